"""The HTTP API and the wiki widget: `create_app(settings)` is a FastAPI app over the same pipeline as the CLI.

POST /v1/ask (the `rag ask --json` object), POST /v1/ask/stream (Server-Sent Events: delta, citation,
done, error), GET /v1/passages/{chunk_id}, GET /v1/sources, POST /v1/feedback, GET /healthz,
GET /widget.js, GET /widget/demo; OpenAPI at /docs. Every error is `{"error": {"code", "message"}}` with
a one-line message and never a stack trace.
"""

import hmac
import ipaddress
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.catalog import Catalog, CatalogError
from rag.api_models import (
    AUTH_ERRORS,
    EVENTS,
    AnswerOut,
    AskIn,
    DocumentOut,
    FeedbackIn,
    FeedbackOut,
    HealthOut,
    PassageOut,
    SourcesOut,
    content,
    errors,
)
from rag.embeddings import EmbeddingError
from rag.feedback import FeedbackStore
from rag.generators import UnknownGenerator
from rag.generators.base import GeneratorError
from rag.pipeline import (
    EmptyIndexError,
    Pipeline,
    QuestionError,
    build_pipeline,
    clean_question,
    parse_history,
)
from rag.retrieval import UnknownBackend
from rag.settings import Settings
from rag.store import StoreError
from rag.types import CitationEvent, Event, TextDelta

log = logging.getLogger("rag.api")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


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
    """The response for an exception of the pipeline, the store or the generator."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, QuestionError):
        return ApiError(422, "invalid_question", str(exc))
    if isinstance(exc, EmptyIndexError):
        return ApiError(503, "empty_index", "the index is empty: run `rag ingest` first")
    if isinstance(exc, StoreError | CatalogError | EmbeddingError | UnknownGenerator | UnknownBackend):
        return ApiError(503, "unavailable", str(exc))
    if isinstance(exc, GeneratorError):
        return ApiError(502, "generator_failed", str(exc))
    log.error("unexpected error", exc_info=exc)
    return ApiError(500, "internal", "internal server error; see the server log")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ---- the pieces: the lazily built pipeline, rate limits, the body limit ----


class LazyPipeline:
    """The pipeline, built on first use (once per process, guarded by a lock); a failed build is retried."""

    def __init__(self, settings: Settings, pipeline: Pipeline | None = None) -> None:
        self.settings, self._pipeline, self._lock = settings, pipeline, threading.Lock()

    def get(self) -> Pipeline:
        if self._pipeline is None:
            with self._lock:
                if self._pipeline is None:
                    self._pipeline = build_pipeline(self.settings)
        return self._pipeline


class RateLimiter:
    """A sliding one-minute window of requests per caller."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute, self._lock = per_minute, threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def check(self, caller: str) -> None:
        if not self.per_minute:
            return
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(caller, deque())
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                wait = max(1, math.ceil(hits[0] + 60 - now))
                raise ApiError(
                    429,
                    "rate_limited",
                    f"more than {self.per_minute} requests a minute; retry in {wait} s",
                    {"Retry-After": str(wait)},
                )
            hits.append(now)


class BodyLimit:
    """ASGI middleware: reject bodies over `limit` bytes with 413 before anything parses them (declared
    Content-Length, or counted as a chunked body arrives); the accepted body is replayed to the app."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = ApiError(413, "body_too_large", f"the request body is over {self.limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            return await too_large.response()(scope, receive, send)
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await too_large.response()(scope, receive, send)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


# ---- server-sent events ----


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def event_json(event: Event) -> dict[str, Any]:
    if isinstance(event, TextDelta):
        return {"text": event.text}
    if isinstance(event, CitationEvent):
        return {**event.citation.to_json(), "metadata": event.citation.passage.metadata}
    return event.answer.to_json()


async def sse_stream(events: Iterator[Event]) -> AsyncIterator[str]:
    """Each pipeline event as soon as it is produced (the pipeline runs in a worker thread); a failure
    mid-stream becomes an `error` event."""
    try:
        async for event in iterate_in_threadpool(events):
            yield sse(event.type, event_json(event))
    except Exception as exc:
        yield sse("error", as_api_error(exc).body())


def _static(name: str) -> str:
    return (resources.files("rag") / "static" / name).read_text(encoding="utf-8")


# ---- the app ----


def create_app(settings: Settings, pipeline: Pipeline | None = None) -> FastAPI:
    """The API over `pipeline` (built from `settings` on first use when not given)."""
    server = settings.server
    lazy = LazyPipeline(settings, pipeline)
    limiter = RateLimiter(server.rate_limit_per_minute)
    keys = [key.encode() for key in server.api_keys]
    bearer = HTTPBearer(auto_error=False, description="One of the keys in server.api_keys.")
    widget_js, demo_html = _static("widget.js"), _static("demo.html")

    async def access(
        request: Request, auth: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> None:
        """API key (when keys are configured), the browser origin, then the caller's rate limit."""
        client = request.client.host if request.client else ""
        if keys:
            if auth is None:
                raise ApiError(401, "missing_key", "send an API key: Authorization: Bearer KEY", _CHALLENGE)
            token = auth.credentials.encode()
            matches = [hmac.compare_digest(token, key) for key in keys]  # no early exit: constant time
            if not any(matches):
                raise ApiError(401, "invalid_key", "the API key is not valid", _CHALLENGE)
            caller = f"key {matches.index(True)}"
        elif is_loopback(client):
            caller = f"client {client}"
        else:
            raise ApiError(403, "loopback_only", "no API keys are configured: only loopback clients may call")
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin and origin != own and origin not in server.cors_origins:
            raise ApiError(403, "origin_not_allowed", f"origin {origin} is not in server.cors_origins")
        limiter.check(caller)

    app = FastAPI(
        title="rag-chat",
        summary="Answers with verified citations from your documents.",
        version="1",
        responses=errors(404),
    )
    api = APIRouter(prefix="/v1", dependencies=[Depends(access)], responses=errors(*AUTH_ERRORS))

    @api.post("/ask", responses={200: {"model": AnswerOut}, **errors(502, 503)})
    def ask(body: AskIn) -> JSONResponse:
        """Answer one question: the same JSON object as `rag ask --json`."""
        history = [t.model_dump() for t in body.history]
        filters = body.filters.to_filters() if body.filters else None
        answer = lazy.get().ask(body.question, history, filters, body.k)
        return JSONResponse(answer.to_json())

    @api.post(
        "/ask/stream",
        response_class=Response,  # not EventStream: its media type would be documented for the errors too
        responses={200: content("text/event-stream", "One schema per event", EVENTS), **errors(503)},
    )
    async def ask_stream(body: AskIn) -> EventStream:
        """Answer one question as Server-Sent Events: `delta` {text}, `citation` (as in /v1/ask, plus the
        passage's metadata), `done` (the /v1/ask object), or `error` {error: {code, message}}."""
        history = [t.model_dump() for t in body.history]
        filters = body.filters.to_filters() if body.filters else None

        def start() -> Iterator[Event]:  # validate before the 200 is sent, so that errors keep their status
            pipeline = lazy.get()
            clean_question(body.question, settings.answer.max_question_chars)
            parse_history(history, settings.answer.max_history_turns)
            pipeline.ensure_ready()
            return pipeline.stream(body.question, history, filters, body.k)

        events = await run_in_threadpool(start)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return EventStream(sse_stream(events), headers=headers)

    @api.get("/passages/{chunk_id}", responses={200: {"model": PassageOut}, **errors(503)})
    def passage(chunk_id: str) -> JSONResponse:
        """One indexed passage: its text, metadata and span in its source document."""
        found = lazy.get().passage(chunk_id) if len(chunk_id) <= 200 else None
        if found is None:
            raise ApiError(404, "not_found", f"no passage with id {chunk_id[:80]!r}")
        body = PassageOut(
            chunk_id=found.id, text=found.text, source=found.source, title=found.title, kind=found.kind,
            author=found.author, start=found.start, end=found.end, metadata=found.metadata,
        )  # fmt: skip
        return JSONResponse(body.model_dump())

    @api.get("/sources", responses={200: {"model": SourcesOut}, **errors(503)})
    def sources() -> JSONResponse:
        """The ingested documents (without their text)."""
        documents = [
            DocumentOut(path=d.path, source=d.source, title=d.title, loader=d.loader, chunks=d.chunks,
                        meta=d.meta, ingested_at=d.ingested_at)
            for d in Catalog(settings.catalog_path).documents()
        ]  # fmt: skip
        return JSONResponse(SourcesOut(documents=documents).model_dump())

    @api.post("/feedback", status_code=201, responses={201: {"model": FeedbackOut}})
    def feedback(body: FeedbackIn) -> JSONResponse:
        """Thumbs up (1) or down (-1) on an answer, stored with the question, answer and citations."""
        store = FeedbackStore(settings.feedback_path)
        new = store.add(body.rating, body.question, body.answer, body.citations, body.comment, origin="api")
        return JSONResponse({"id": new}, status_code=201)

    app.include_router(api)

    @app.get("/healthz", responses={200: {"model": HealthOut}, **errors(503)})
    def healthz() -> JSONResponse:
        """200 when the index is loaded and holds chunks; 503 (with the reason) otherwise."""
        pipeline = lazy.get()
        pipeline.ensure_ready()
        return JSONResponse({"status": "ok", "chunks": pipeline.store.count()})

    @app.get("/widget.js", response_class=Response, responses={200: content("text/javascript", "The script")})
    def widget() -> Response:
        """The embeddable chat widget (see the README for the script tag)."""
        headers = {"Cache-Control": "public, max-age=300", "Cross-Origin-Resource-Policy": "cross-origin"}
        return Response(widget_js, media_type="text/javascript; charset=utf-8", headers=headers)

    @app.get("/widget/demo", response_class=Response, responses={200: content("text/html", "The page")})
    def demo() -> HTMLResponse:
        """An example wiki page that embeds the widget."""
        return HTMLResponse(demo_html)

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return as_api_error(exc).response()

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. not UTF-8): malformed JSON
            return ApiError(422, "invalid_json", "the request body is not valid JSON").response()
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.status_code)
        return ApiError(exc.status_code, code, message, exc.headers).response()

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return ApiError(422, "invalid_json", "the request body is not valid JSON").response()
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))
        return ApiError(422, "invalid_request", message).response()

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    for kind in (ApiError, QuestionError, EmptyIndexError, StoreError, CatalogError, EmbeddingError,
                 GeneratorError, UnknownGenerator, UnknownBackend, Exception):  # fmt: skip
        app.add_exception_handler(kind, on_error)
    app.add_middleware(BodyLimit, limit=server.max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=server.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["Retry-After"],
        max_age=600,
    )
    return app
