"""Schemathesis fuzzes every operation of the OpenAPI schema against the running server: valid and invalid
requests alike get no 5xx, and every response conforms to the schema (status, content type, headers, body).

Cases are drawn with Hypothesis from each operation's strategy rather than through
`schemathesis.pytest.from_fixture`, whose lazy loader reads a pytest-internal attribute (`_nodeid`) that
pytest 9 no longer has.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rag.api import create_app

from .conftest import DefaultIndex
from .test_api import KEY, running, server_settings

ADMIN = "fuzz-admin-key"

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
OPERATIONS = [
    ("POST", "/v1/ask"),
    ("POST", "/v1/ask/stream"),
    ("GET", "/v1/passages/{chunk_id}"),
    ("GET", "/v1/sources"),
    ("GET", "/v1/examples"),
    ("POST", "/v1/feedback"),
    ("PUT", "/v1/documents/{doc_id}"),
    ("DELETE", "/v1/documents/{doc_id}"),
    ("GET", "/v1/documents"),
    ("GET", "/healthz"),
    ("GET", "/widget.js"),
    ("GET", "/widget/demo"),
]


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, default_index: DefaultIndex
) -> Iterator[schemathesis.schemas.BaseSchema]:
    data_dir = default_index.copy(tmp_path_factory.mktemp("fuzz") / "data")  # the fuzzer posts feedback
    server = {"api_keys": [KEY], "admin_keys": [ADMIN], "rate_limit_per_minute": 0, "feedback_per_minute": 0}
    app_settings = server_settings(data_dir, server=server)
    with running(create_app(app_settings)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_the_schema_has_every_operation(api_schema: schemathesis.schemas.BaseSchema) -> None:
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_errors_and_conforming_responses(
    api_schema: schemathesis.schemas.BaseSchema, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {ADMIN if path.startswith('/v1/documents') else KEY}"}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, headers=headers),
        operation.as_strategy(GenerationMode.NEGATIVE, headers=headers),
    )

    # Bounded and seeded: reproducible, and the module stays well under a minute.
    @seed(20261127)
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=cases)
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS, timeout=60)

    fuzz()
