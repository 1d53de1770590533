"""The HTTP API as a client uses it: real uvicorn servers on loopback ports, httpx, the real pipeline on the
default corpus (a copy of the session's index), fakes only for the LLM endpoint's failures."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ingest.indexer import ingest
from rag.api import create_app, server_config
from rag.errors import GENERATOR_FAILED, UNAVAILABLE
from rag.feedback import FeedbackStore
from rag.generators.base import GenerationRequest, Generator, GeneratorError
from rag.generators.extractive import ExtractiveGenerator
from rag.pipeline import build_pipeline
from rag.settings import Settings

from .conftest import BIN, DefaultIndex, free_port, wait_http

KEY, KEY2 = "test-key-one", "test-key-two"
WIKI = "https://wiki.example.com"
FUNDING = "How much funding was returned?"
STATEMENT = "What did Imperial say about the partnership?"  # a three-sentence answer


# ---- helpers shared with test_api_fuzz.py and test_widget_browser.py ----


def server_settings(data_dir: Path, **fields: Any) -> Settings:
    """Settings for `data_dir` and the given fields, untouched by RAG_* variables or a rag.toml."""
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("RAG_"):
                patch.delenv(key)
        patch.chdir(data_dir.parent)
        return Settings(data_dir=data_dir, **fields)


def ingested(data_dir: Path, *paths: Path) -> Path:
    ingest(list(paths), server_settings(data_dir))
    return data_dir


@contextlib.contextmanager
def running(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` with uvicorn on a free port of `host` (in a thread), configured as `rag serve` does;
    yield its base URL."""
    port = free_port()
    config = server_config(app, host, port, log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a text/event-stream response, as they arrive."""
    event, data = "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield event, json.loads("\n".join(data))
            event, data = "message", []


# ---- fixtures ----


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, default_index: DefaultIndex) -> Path:
    return default_index.copy(tmp_path_factory.mktemp("api") / "data")  # feedback is written next to it


@pytest.fixture(scope="module")
def settings(data_dir: Path) -> Settings:
    server = {
        "api_keys": [KEY, KEY2],
        "rate_limit_per_minute": 0,
        "cors_origins": [WIKI],
        "max_body_bytes": 4096,
    }
    return server_settings(data_dir, server=server)


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    with running(create_app(settings)) as url:
        yield url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c:
        yield c


class Scripted(Generator):
    """The extractive generator, held at a gate or failing on cue, standing in for a flaky LLM endpoint."""

    def __init__(self) -> None:
        self.inner: Generator | None = None  # the pipeline's extractive generator, set once it is built
        self.mode = "normal"
        self.gate, self.finished = threading.Event(), threading.Event()

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        assert self.inner is not None
        pieces = list(self.inner.generate(request))
        if self.mode == "fail":
            raise GeneratorError("the LLM endpoint at http://127.0.0.1:9/v1 refused the connection")
        if self.mode == "crash":
            raise RuntimeError("secret internals: /srv/app/config.py line 12")
        yield from pieces[:2]  # the first sentence is complete (and verified) once the second starts
        if self.mode == "gate":
            self.gate.wait(timeout=15)
        if self.mode == "fail-midway":
            raise GeneratorError("the LLM endpoint stopped answering")
        self.finished.set()
        yield from pieces[2:]


@pytest.fixture(scope="module")
def scripted(data_dir: Path) -> Iterator[tuple[str, Scripted]]:
    settings = server_settings(data_dir, generator={"fallback": False})
    generator = Scripted()
    pipeline = build_pipeline(settings, generator=generator)
    generator.inner = ExtractiveGenerator(pipeline.scorer, settings.answer)
    with running(create_app(settings, pipeline)) as url:
        yield url, generator


# ---- answers ----


def test_ask_returns_the_rag_ask_json(base: str, client: httpx.Client, settings: Settings) -> None:
    response = client.post(f"{base}/v1/ask", json={"question": FUNDING})
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = build_pipeline(settings).ask(FUNDING).to_json()
    assert answer.keys() == expected.keys()
    assert {k: v for k, v in answer.items() if k != "latency_ms"} == {
        k: v for k, v in expected.items() if k != "latency_ms"
    }
    assert "£500,000" in answer["answer"] and answer["refused"] is False
    citation = answer["citations"][0]
    assert citation["text"][citation["start"] : citation["end"]] == citation["quote"]


def test_ask_with_history_filters_and_k(base: str, client: httpx.Client) -> None:
    history = [
        {"role": "user", "content": "Who led the Data Science Institute?"},
        {
            "role": "assistant",
            "content": "It was led by Prof Guo, an internationally recognised AI researcher.",
        },
    ]
    followup = client.post(
        f"{base}/v1/ask", json={"question": "Where did he go after leaving Imperial?", "history": history}
    ).json()
    assert "Hong Kong University of Science and Technology" in followup["answer"]

    comments = client.post(
        f"{base}/v1/ask",
        json={"question": "What did people say about China?", "filters": {"kind": "comment"}, "k": 3},
    ).json()
    assert len(comments["retrieved"]) <= 3
    assert comments["citations"] and all(
        c["kind"] == "comment" and c["author"] for c in comments["citations"]
    )


def test_unanswerable_question_is_refused(base: str, client: httpx.Client) -> None:
    answer = client.post(f"{base}/v1/ask", json={"question": "What is Jari's annual revenue?"}).json()
    assert answer["refused"] is True and answer["citations"] == []


# ---- streaming ----


def test_stream_events_arrive_before_the_answer_is_complete(scripted: tuple[str, Scripted]) -> None:
    url, generator = scripted
    generator.mode = "gate"
    generator.gate.clear()
    generator.finished.clear()
    with httpx.stream("POST", f"{url}/v1/ask/stream", json={"question": STATEMENT}, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        first = next(events)
        # The generator is still held at the gate: the first sentence reached us before the rest exists.
        assert first[0] == "delta" and not generator.finished.is_set()
        generator.gate.set()
        rest = list(events)
    generator.mode = "normal"
    assert rest[-1][0] == "done"
    assert rest[-1][1]["answer"].startswith(first[1]["text"])


def test_stream_event_format(base: str, client: httpx.Client) -> None:
    with client.stream("POST", f"{base}/v1/ask/stream", json={"question": STATEMENT}) as response:
        events = list(sse_events(response))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "delta" and kinds[-1] == "done" and kinds.count("done") == 1 and "error" not in kinds
    answer = events[-1][1]
    assert "".join(data["text"] for kind, data in events if kind == "delta").strip() == answer["answer"]
    streamed = [data for kind, data in events if kind == "citation"]
    # a marker sent again replaces the earlier event (its passage gained a further quote)
    latest = {c["marker"]: {k: v for k, v in c.items() if k != "metadata"} for c in streamed}
    assert list(latest.values()) == answer["citations"]
    assert all(c["metadata"]["source"] == c["source"] for c in streamed)
    assert len(latest) >= 1 and sum(len(c["quotes"]) for c in latest.values()) >= 2


def test_stream_rejects_bad_questions_with_a_status(base: str, client: httpx.Client) -> None:
    response = client.post(f"{base}/v1/ask/stream", json={"question": "   "})
    assert response.status_code == 422
    assert response.json() == {"error": {"code": "invalid_question", "message": "the question is empty"}}


def test_failure_mid_stream_is_an_error_event(scripted: tuple[str, Scripted]) -> None:
    url, generator = scripted
    generator.mode = "fail-midway"
    try:
        with httpx.stream(
            "POST", f"{url}/v1/ask/stream", json={"question": STATEMENT}, timeout=60
        ) as response:
            events = list(sse_events(response))
    finally:
        generator.mode = "normal"
    assert events[0][0] == "delta"
    assert events[-1] == ("error", {"error": {"code": "generator_failed", "message": GENERATOR_FAILED}})


def test_llm_failure_is_502_and_a_crash_is_500_without_internals(scripted: tuple[str, Scripted]) -> None:
    url, generator = scripted
    try:
        generator.mode = "fail"
        failed = httpx.post(f"{url}/v1/ask", json={"question": FUNDING}, timeout=60)
        generator.mode = "crash"
        crashed = httpx.post(f"{url}/v1/ask", json={"question": FUNDING}, timeout=60)
        with httpx.stream("POST", f"{url}/v1/ask/stream", json={"question": FUNDING}, timeout=60) as response:
            crash_events = list(sse_events(response))
    finally:
        generator.mode = "normal"
    assert failed.status_code == 502
    # the endpoint's address and the driver's words go to the server log, not to the client
    assert failed.json()["error"] == {"code": "generator_failed", "message": GENERATOR_FAILED}
    assert crashed.status_code == 500 and crashed.json()["error"]["code"] == "internal"
    assert crash_events == [("error", crashed.json())]
    for text in (crashed.text, json.dumps(crash_events)):
        assert "secret" not in text and "Traceback" not in text and "config.py" not in text


# ---- passages, sources, feedback, health, docs, widget ----


def test_passage_by_chunk_id(base: str, client: httpx.Client) -> None:
    citation = client.post(f"{base}/v1/ask", json={"question": FUNDING}).json()["citations"][0]
    passage = client.get(f"{base}/v1/passages/{citation['chunk_id']}").json()
    assert passage["text"] == citation["text"] and passage["title"] == citation["title"]
    assert passage["end"] > passage["start"] >= 0 and passage["metadata"]["kind"] == "page"
    missing = client.get(f"{base}/v1/passages/no-such-chunk")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_sources_lists_the_ingested_documents(base: str, client: httpx.Client) -> None:
    documents = client.get(f"{base}/v1/sources").json()["documents"]
    assert sorted(Path(d["source"]).name for d in documents) == [
        "imperial-jari-article.md",
        "imperial-jari-thread.txt",
    ]
    assert all(d["chunks"] > 0 and d["title"] for d in documents)
    assert all("path" not in d and not Path(d["source"]).is_absolute() for d in documents)  # no server paths


def test_feedback_is_stored(base: str, client: httpx.Client, settings: Settings) -> None:
    body = {
        "rating": -1,
        "question": FUNDING,
        "answer": "£500,000 [1]",
        "citations": [{"marker": 1, "chunk_id": "c1", "quote": "£500,000", "start": 4, "end": 12}],
        "comment": "ok",
    }
    response = client.post(f"{base}/v1/feedback", json=body)
    assert response.status_code == 201
    stored = {f.id: f for f in FeedbackStore(settings.feedback_path).all()}[response.json()["id"]]
    assert (stored.rating, stored.question, stored.citations, stored.origin) == (
        -1,
        FUNDING,
        [{"marker": 1, "chunk_id": "c1", "source": "", "title": "", "section": "", "url": "", "kind": "", "author": "",
          "quote": "£500,000", "quotes": [], "start": 4, "end": 12}],
        "api",
    )  # fmt: skip
    bad = client.post(f"{base}/v1/feedback", json={**body, "rating": 0})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_health_docs_and_widget(base: str, settings: Settings) -> None:
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}  # without a server key: nothing more
    health = httpx.get(f"{base}/healthz", headers={"Authorization": f"Bearer {KEY}"})
    assert health.status_code == 200 and health.json()["chunks"] > 10
    assert health.json()["feedback_max_bytes"] == settings.server.feedback_max_bytes
    assert "swagger" in httpx.get(f"{base}/docs").text.lower()
    assert "/v1/ask/stream" in httpx.get(f"{base}/openapi.json").json()["paths"]
    script = httpx.get(f"{base}/widget.js")
    assert script.headers["content-type"].startswith("text/javascript") and "attachShadow" in script.text
    assert "innerHTML" not in script.text  # corpus text only ever becomes text nodes
    demo = httpx.get(f"{base}/widget/demo")
    assert demo.headers["content-type"].startswith("text/html") and "/widget.js" in demo.text


def test_empty_index_and_unreachable_store_are_503(tmp_path: Path) -> None:
    empty = create_app(server_settings(tmp_path / "empty"))
    unreachable = create_app(server_settings(tmp_path / "remote", chroma_url="http://127.0.0.1:9"))
    with running(empty) as empty_url, running(unreachable) as unreachable_url:
        for response in (
            httpx.post(f"{empty_url}/v1/ask", json={"question": FUNDING}),
            httpx.get(f"{empty_url}/healthz"),
        ):
            assert response.status_code == 503
            assert response.json()["error"] == {
                "code": "empty_index",
                "message": "the index is empty: the operator should run `rag ingest`",
            }
        down = httpx.post(f"{unreachable_url}/v1/ask", json={"question": FUNDING}, timeout=60)
        assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
        assert down.json()["error"]["message"] == UNAVAILABLE  # not the driver's message nor the URL


# ---- access ----


def test_missing_and_invalid_keys_are_401(base: str) -> None:
    for headers, code in [
        ({}, "missing_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_key"),
        ({"Authorization": "Bearer wrong-key"}, "invalid_key"),
        ({"Authorization": f"Bearer {KEY}x"}, "invalid_key"),
    ]:
        response = httpx.post(f"{base}/v1/ask", json={"question": FUNDING}, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == code and response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{base}/v1/sources", headers={"Authorization": f"Bearer {KEY2}"}).status_code == 200


def test_origins_outside_the_allow_list_are_403(base: str, client: httpx.Client) -> None:
    foreign = client.get(f"{base}/v1/sources", headers={"Origin": "https://evil.example.com"})
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
    wiki = client.get(f"{base}/v1/sources", headers={"Origin": WIKI})
    assert wiki.status_code == 200 and wiki.headers["access-control-allow-origin"] == WIKI
    assert client.get(f"{base}/v1/sources", headers={"Origin": base}).status_code == 200  # the demo page
    preflight = httpx.options(
        f"{base}/v1/ask/stream",
        headers={
            "Origin": WIKI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == WIKI


def test_without_keys_only_loopback_clients_are_served(data_dir: Path) -> None:
    # a non-loopback client gets 403: test_security.py (from this machine's own non-loopback address)
    with running(create_app(server_settings(data_dir))) as url:
        assert httpx.get(f"{url}/v1/sources").status_code == 200


def test_rate_limit_is_per_key(data_dir: Path) -> None:
    app = create_app(server_settings(data_dir, server={"api_keys": [KEY, KEY2], "rate_limit_per_minute": 3}))
    with running(app) as url:
        one = {"Authorization": f"Bearer {KEY}"}
        statuses = [httpx.get(f"{url}/v1/sources", headers=one).status_code for _ in range(3)]
        limited = httpx.get(f"{url}/v1/sources", headers=one)
        other = httpx.get(f"{url}/v1/sources", headers={"Authorization": f"Bearer {KEY2}"})
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert other.status_code == 200


# ---- malformed and oversized requests ----


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        ('{"question": ', "invalid_json", "the request body is not valid JSON"),
        ("[1, 2]", "invalid_request", "Input should be a valid dictionary"),
        ('{"question": 42}', "invalid_request", "question: Input should be a valid string"),
        ('{"question": "Hi?", "extra": 1}', "invalid_request", "extra: Extra inputs are not permitted"),
        ('{"question": "Hi?", "k": 0}', "invalid_request", "k: Input should be greater than or equal to 1"),
        (
            '{"question": "Hi?", "history": [{"role": "system", "content": "x"}]}',
            "invalid_request",
            "history.0.role",
        ),
        ('{"question": "\\ud800?"}', "invalid_request", "unpaired surrogates"),
        ('{"question": ""}', "invalid_question", "the question is empty"),
        (json.dumps({"question": "why " * 600}), "invalid_question", "the question is too long"),
    ],
)
def test_malformed_bodies_are_422(
    base: str, client: httpx.Client, content: str, code: str, message: str
) -> None:
    response = client.post(f"{base}/v1/ask", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == code and message in error["message"] and "\n" not in error["message"]


def test_oversized_bodies_are_413_before_parsing(base: str, client: httpx.Client) -> None:
    big = json.dumps({"question": "x" * 5000})
    declared = client.post(f"{base}/v1/ask", content=big, headers={"Content-Type": "application/json"})

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        yield b'{"question": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    chunked = client.post(f"{base}/v1/ask", content=chunks(), headers={"Content-Type": "application/json"})
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json()["error"] == {
            "code": "body_too_large",
            "message": "the request body is over 4096 bytes",
        }
    assert client.post(f"{base}/v1/ask", json={"question": FUNDING}).status_code == 200


def test_unknown_paths_and_methods_are_json(base: str) -> None:
    missing = httpx.get(f"{base}/v2/nothing")
    wrong = httpx.delete(f"{base}/healthz")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")


# ---- concurrency ----


def test_twenty_simultaneous_questions(data_dir: Path) -> None:
    expected = {
        FUNDING: "£500,000",
        "When was the funding returned?": "October 2021",
        "Who led the Data Science Institute?": "Prof Guo",
        "Where did Guo go after leaving Imperial?": "Hong Kong University of Science and Technology",
    }
    questions = [list(expected)[i % len(expected)] for i in range(20)]
    app = create_app(
        server_settings(data_dir, server={"api_keys": [KEY]})
    )  # fresh: the pipeline is built on first use
    with running(app) as url, httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:
        barrier = threading.Barrier(len(questions))

        def ask(question: str) -> tuple[int, str]:
            barrier.wait()
            response = c.post(f"{url}/v1/ask", json={"question": question})
            return response.status_code, response.json().get("answer", response.text)

        with ThreadPoolExecutor(len(questions)) as pool:
            results = list(pool.map(ask, questions))
    for question, (status, answer) in zip(questions, results, strict=True):
        assert status == 200 and expected[question] in answer, (question, answer)


# ---- the command ----


def test_rag_serve(data_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {"RAG_DATA_DIR": str(data_dir)}
    env["RAG_SERVER__RATE_LIMIT_PER_MINUTE"] = "3"  # per client: the ask and two more requests
    refused = subprocess.run(
        [str(BIN / "rag"), "serve", "--host", "0.0.0.0"], capture_output=True, text=True, env=env, timeout=120
    )
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith("error: refusing to listen on 0.0.0.0 without API keys")
    # security finding 12: any Host with browser keys (no DNS-rebinding protection) only when forced
    anyhost = env | {"RAG_SERVER__ALLOWED_HOSTS": '["*"]', "RAG_SERVER__BROWSER_KEYS": '["b"]'}
    refused = subprocess.run(
        [str(BIN / "rag"), "serve"], capture_output=True, text=True, env=anyhost, timeout=120
    )
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith('error: refusing server.allowed_hosts = ["*"] with browser keys')

    with rag_serve(env, tmp_path / "serve.log") as port:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
        started = (tmp_path / "serve.log").read_text()  # the model and index load before serving
        assert started.index("loading the model and the index") < started.index("API on http")
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/ask", json={"question": FUNDING}, timeout=120)
        assert "£500,000" in answer.json()["answer"]
        # uvicorn believes no X-Forwarded-For (the probe reset its limit with one) and checks Host
        sources = f"http://127.0.0.1:{port}/v1/sources"
        forged = [
            httpx.get(sources, headers={"X-Forwarded-For": f"127.0.0.{i}"}).status_code for i in (2, 3, 4)
        ]
        assert forged == [200, 200, 429]
        assert httpx.get(sources, headers={"Host": "attacker.example"}).status_code == 400
    forced = anyhost | {"RAG_SERVER__FORCE_ANY_HOST": "true", "RAG_SERVER__API_KEYS": '["k"]'}
    with rag_serve(forced, tmp_path / "forced.log"):
        assert 'warning: server.allowed_hosts is "*"' in (tmp_path / "forced.log").read_text()


@contextlib.contextmanager
def rag_serve(env: dict[str, str], log_path: Path) -> Iterator[int]:
    """`rag serve` on a free port, its output in `log_path`, until the block ends; yields the port."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "rag"), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_an_unknown_backend_name_is_a_503_never_a_500(data_dir: Path) -> None:
    """An operator's typo in a backend name (here the answer-or-refuse judge): one logged line and 503
    `unavailable`, like every other misconfiguration, not an internal error."""
    settings = server_settings(data_dir, answer={"judge": "strict"})
    with running(create_app(settings)) as url:
        response = httpx.post(f"{url}/v1/ask", json={"question": FUNDING}, timeout=60)
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable", response.text
