"""Error responses: a status, a stable code and a one-line message a reader can act on.

The message never holds a file path, an endpoint's address or a driver's exception text: those go to the
server log, and the body says what went wrong and what to do.
"""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

from rag.generators import UnknownGenerator
from rag.generators.base import GeneratorError
from rag.index.catalog import CatalogError
from rag.index.embeddings import EmbeddingError
from rag.index.store import StoreError
from rag.pipeline import EmptyIndexError, QuestionError
from rag.retrieval import UnknownBackend

log = logging.getLogger("rag.api")

UNAVAILABLE = "the index cannot be used right now; the operator finds the reason in the server log"
MISCONFIGURED = "the server is misconfigured; the operator finds the reason in the server log"
GENERATOR_FAILED = (
    "the language model did not answer (timeout, error or unreachable); retry later, or ask the operator "
    "to turn on generator.fallback"
)


class ApiError(Exception):
    """An error response: HTTP status, a stable code, a one-line message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers
        self.message = " ".join(message.split())

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def as_api_error(exc: BaseException) -> ApiError:
    """The response for an exception of the pipeline, the store or the generator; the details of the
    operator's problems (paths, addresses, driver messages) are logged, not sent."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, QuestionError):
        return ApiError(422, "invalid_question", str(exc))
    if isinstance(exc, EmptyIndexError):
        return ApiError(503, "empty_index", "the index is empty: the operator should run `rag ingest`")
    if isinstance(exc, StoreError | CatalogError | EmbeddingError):
        log.error("unavailable: %s", exc)
        return ApiError(503, "unavailable", UNAVAILABLE)
    if isinstance(exc, UnknownGenerator | UnknownBackend):
        log.error("misconfigured: %s", exc)
        return ApiError(503, "unavailable", MISCONFIGURED)
    if isinstance(exc, GeneratorError):
        log.error("generator failed: %s", exc)
        return ApiError(502, "generator_failed", GENERATOR_FAILED)
    log.error("unexpected error", exc_info=exc)
    return ApiError(500, "internal", "internal server error; see the server log")


HANDLED = (ApiError, QuestionError, EmptyIndexError, StoreError, CatalogError, EmbeddingError, GeneratorError,
           UnknownGenerator, UnknownBackend, Exception)  # fmt: skip
