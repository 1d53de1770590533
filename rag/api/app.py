"""The HTTP API and the wiki widget: `create_app(settings)` is a FastAPI app over the same pipeline as the CLI.

POST /v1/ask (the `rag ask --json` object), POST /v1/ask/stream (Server-Sent Events: delta, citation,
done, error), GET /v1/passages/{chunk_id}, GET /v1/sources, POST /v1/feedback, GET /healthz,
GET /widget.js, GET /widget/demo; PUT/DELETE /v1/documents/{doc_id} and GET /v1/documents (admin keys:
a wiki's webhooks); OpenAPI at /docs. Who may call what is `rag.api.access`; every error is
`{"error": {"code", "message"}}` with a one-line message and never a stack trace or a server path.
"""

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ingest.indexer import put_document, remove_document
from ingest.loaders import PUSHED, LoaderError, pushed_document
from rag.api.access import Access, Attempt, Caller, HostGuard, allowed_hosts
from rag.api.errors import HANDLED, ApiError, as_api_error
from rag.api.models import (
    AUTH_ERRORS,
    DOC_ID,
    EVENTS,
    AnswerOut,
    AskIn,
    DocumentChange,
    DocumentIn,
    DocumentOut,
    ExamplesOut,
    FeedbackIn,
    FeedbackOut,
    HealthOut,
    PassageOut,
    PushedListOut,
    PushedOut,
    SourcesOut,
    content,
    errors,
)
from rag.api.pages import SecurityHeaders, page_headers, static
from rag.feedback import FeedbackStore
from rag.index.catalog import Catalog
from rag.index.embeddings import for_index
from rag.index.replica import catch_up, local_version
from rag.pipeline import Pipeline, build_pipeline, clean_question, parse_history
from rag.settings import Settings
from rag.types import CitationEvent, Event, TextDelta

log = logging.getLogger("rag.api")


# ---- the pieces: the lazily built pipeline, rate limits, the body limit ----


class LazyPipeline:
    """The pipeline, built on first use (once per process, guarded by a lock); a failed build is retried.
    Every `server.sync_seconds` a request also starts a check, in the background, of whether another
    process changed the index; if so the data dir catches up and the next requests use the new index."""

    def __init__(self, settings: Settings, pipeline: Pipeline | None = None) -> None:
        self.settings, self._pipeline, self._lock = settings, pipeline, threading.Lock()
        self._version = local_version(settings)  # the data dir's version the pipeline was built at
        self._checked = time.monotonic()
        self._following = threading.Lock()

    def get(self) -> Pipeline:
        if self._pipeline is None:
            with self._lock:
                if self._pipeline is None:
                    self._version = local_version(self.settings)
                    self._pipeline = build_pipeline(self.settings)
        self.poll()
        return self._pipeline

    def poll(self) -> None:
        """Start a check for changes by other processes, in the background, if one is due."""
        every, pipeline = self.settings.server.sync_seconds, self._pipeline
        if not every or pipeline is None or time.monotonic() - self._checked < every:
            return
        if self._following.acquire(blocking=False):
            self._checked = time.monotonic()
            threading.Thread(target=self._follow, args=(pipeline,), daemon=True).start()

    def _follow(self, pipeline: Pipeline) -> None:
        try:
            if catch_up(self.settings, pipeline.store):  # another process changed the index
                pipeline.store.reopen()
            if local_version(self.settings) != self._version:
                self.refresh()
        except Exception as exc:  # the store is down, say: keep answering from what is loaded
            log.warning("could not check the index for changes: %s", exc)
        finally:
            self._checked = time.monotonic()
            self._following.release()

    def refresh(self) -> None:
        """After the index changed: the next request's pipeline reads the new lexical index (the store
        and the generator are kept, and the model unless the index was rebuilt at another precision)."""
        with self._lock:
            old = self._pipeline
            if old is not None:
                self._version = local_version(self.settings)
                same = old.embedder.settings == for_index(self.settings.embedding, old.store.info())
                self._pipeline = build_pipeline(
                    self.settings,
                    embedder=old.embedder if same else None,
                    store=old.store,
                    generator=old.generator,
                )


class Cors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as every error is: a JSON error body."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        error = ApiError(400, "cors_refused", f"this cross-origin request is not allowed ({refused})")
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}
        return JSONResponse(error.body(), status_code=400, headers=headers)


def scope_attempt(scope: Scope) -> Attempt:
    """What a request presents, read from its ASGI scope (the bearer key as HTTPBearer reads it)."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None
    client = scope["client"][0] if scope.get("client") else ""
    return Attempt(client, token, headers.get("origin"), scope.get("scheme", "http"), headers.get("host", ""))


class BodyLimit:
    """ASGI middleware: reject bodies over `limit` bytes with 413 before anything parses them (declared
    Content-Length, or counted as a chunked body arrives); the accepted body is replayed to the app. The
    documents API (`document_limit`) checks its admin key first (`admin`), so that a caller without one
    has nothing read; the app finds the caller in the request's state."""

    def __init__(
        self, app: ASGIApp, limit: int, document_limit: int, admin: Callable[[Attempt], Caller]
    ) -> None:
        self.app, self.limit, self.document_limit, self.admin = app, limit, document_limit, admin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        documents = scope["path"] == "/v1/documents" or scope["path"].startswith("/v1/documents/")
        if documents and scope.get("method") != "OPTIONS":
            try:
                scope.setdefault("state", {})["admin"] = self.admin(scope_attempt(scope))
            except ApiError as exc:
                return await exc.response()(scope, receive, send)
        limit = self.document_limit if documents else self.limit
        too_large = ApiError(413, "body_too_large", f"the request body is over {limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > limit:
            return await too_large.response()(scope, receive, send)
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
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


def public(metadata: dict[str, Any]) -> dict[str, Any]:
    """A passage's metadata as clients see it: without where its file lies on the server (`path`)."""
    return {k: v for k, v in metadata.items() if k != "path"}


def event_json(event: Event) -> dict[str, Any]:
    if isinstance(event, TextDelta):
        return {"text": event.text}
    if isinstance(event, CitationEvent):
        return {**event.citation.to_json(), "metadata": public(event.citation.passage.metadata)}
    return event.answer.to_json()


async def sse_stream(events: Iterator[Event]) -> AsyncIterator[str]:
    """Each pipeline event as soon as it is produced (the pipeline runs in a worker thread); a failure
    mid-stream becomes an `error` event."""
    try:
        async for event in iterate_in_threadpool(events):
            yield sse(event.type, event_json(event))
    except Exception as exc:
        yield sse("error", as_api_error(exc).body())


# ---- the app ----


def create_app(settings: Settings, pipeline: Pipeline | None = None) -> FastAPI:
    """The API over `pipeline` (built from `settings` on first use when not given)."""
    server = settings.server
    lazy = LazyPipeline(settings, pipeline)
    access = Access(server, settings.store.collection)
    feedback_limit = access.limiter("feedback", server.feedback_per_minute, "feedback posts")
    store = FeedbackStore(settings.feedback_path, server.feedback_max_bytes, server.feedback_sender_bytes)
    bearer = HTTPBearer(
        auto_error=False, description="A server key (server.api_keys) or a browser key (server.browser_keys)."
    )
    pages = page_headers(server.cors_origins)

    def token_of(auth: HTTPAuthorizationCredentials | None) -> str | None:
        return auth.credentials if auth is not None else None

    def attempt(request: Request, auth: HTTPAuthorizationCredentials | None) -> Attempt:
        client = request.client.host if request.client else ""
        origin, host = request.headers.get("origin"), request.headers.get("host", "")
        return Attempt(client, token_of(auth), origin, request.url.scheme, host)

    async def caller(
        request: Request, auth: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Caller:
        """The key (when keys are configured), the browser origin, then the caller's rate limit."""
        who = access.check(attempt(request, auth))
        lazy.poll()  # every /v1 request may notice another process's change (the catalog's readers too)
        return who

    async def admin(
        request: Request, auth: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Caller:
        """An admin key (server.admin_keys): the only kind that may write documents (checked by
        `BodyLimit` before the body is read)."""
        checked = getattr(request.state, "admin", None)
        return checked if isinstance(checked, Caller) else access.check_admin(attempt(request, auth))

    app = FastAPI(
        title="rag-chat",
        summary="Answers with verified citations from your documents.",
        version="1",
        responses=errors(404),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if server.docs else None,
    )
    api = APIRouter(prefix="/v1", dependencies=[Depends(caller)], responses=errors(*AUTH_ERRORS))

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
            author=found.author, start=found.start, end=found.end, metadata=public(found.metadata),
        )  # fmt: skip
        return JSONResponse(body.model_dump())

    @api.get("/sources", responses={200: {"model": SourcesOut}, **errors(503)})
    def sources() -> JSONResponse:
        """The ingested documents (without their text, and without where they lie on the server's disk)."""
        documents = [
            DocumentOut(source=d.source, title=d.title, loader=d.loader, chunks=d.chunks, meta=d.meta,
                        ingested_at=d.ingested_at)
            for d in Catalog(settings.catalog_path).documents()
        ]  # fmt: skip
        return JSONResponse(SourcesOut(documents=documents).model_dump())

    @api.get("/examples", responses={200: {"model": ExamplesOut}, **errors(503)})
    def examples() -> JSONResponse:
        """Example questions for a chat box that fit the corpus: the operator's (`ui.examples`), else the
        questions the documents ask in their headings (an FAQ's)."""
        questions = settings.ui.examples or Catalog(settings.catalog_path).questions()
        return JSONResponse(ExamplesOut(questions=questions).model_dump())

    @api.post("/feedback", status_code=201, responses={201: {"model": FeedbackOut}})
    def feedback(body: FeedbackIn, who: Annotated[Caller, Depends(caller)]) -> JSONResponse:
        """Thumbs up (1) or down (-1) on an answer, stored with the question, answer and citations; at most
        server.feedback_per_minute posts a minute per client; the store keeps its newest rows within
        server.feedback_max_bytes, and each sender's within server.feedback_sender_bytes."""
        feedback_limit.check(who.client)
        citations = [c.stored() for c in body.citations]
        sender = f"{who.key} key {who.index}" if who.key in ("server", "admin") else f"client {who.client}"
        new = store.add(
            body.rating, body.question, body.answer, citations, body.comment, origin="api", who=sender
        )
        return JSONResponse({"id": new}, status_code=201)

    app.include_router(api)
    documents = APIRouter(
        prefix="/v1/documents", dependencies=[Depends(admin)], responses=errors(*AUTH_ERRORS)
    )
    DocId = Annotated[
        str, Path(pattern=DOC_ID, description="The page's id in the wiki (letters, digits, . _ ~ -).")
    ]

    @documents.put("/{doc_id}", responses={200: {"model": DocumentChange}, **errors(503)})
    def put(doc_id: DocId, body: DocumentIn) -> JSONResponse:
        """Add or replace a page (a wiki's webhook on save): incremental by content, so an unchanged page
        embeds nothing; the next question sees the new text. Needs an admin key."""
        try:
            doc = pushed_document(doc_id, body.format, body.content, body.title, body.url)
        except LoaderError as exc:
            raise ApiError(422, "invalid_document", f"content: {exc}") from None
        pipeline = lazy.get()
        report = put_document(doc, settings, embedder=pipeline.embedder, store=pipeline.store)
        lazy.refresh()
        (written,) = report.documents
        change = DocumentChange(
            doc_id=doc_id, chunks=written["chunks"], added=report.chunks_added, removed=report.chunks_removed
        )
        return JSONResponse(change.model_dump())

    @documents.delete("/{doc_id}", responses={200: {"model": DocumentChange}, **errors(503)})
    def delete(doc_id: DocId) -> JSONResponse:
        """Remove a page and its chunks (404 when no page has this id). Needs an admin key."""
        pipeline = lazy.get()
        report = remove_document(PUSHED + doc_id, settings, embedder=pipeline.embedder, store=pipeline.store)
        if not report.files_removed:
            raise ApiError(404, "not_found", f"no document with id {doc_id!r}")
        lazy.refresh()
        change = DocumentChange(doc_id=doc_id, chunks=0, added=0, removed=report.chunks_removed)
        return JSONResponse(change.model_dump())

    @documents.get("", responses={200: {"model": PushedListOut}, **errors(503)})
    def pushed() -> JSONResponse:
        """The pages pushed through this API (not the files `rag ingest` read). Needs an admin key."""
        listed = [
            PushedOut(doc_id=d.path.removeprefix(PUSHED), title=d.title, url=d.meta.get("url", ""),
                      chunks=d.chunks, ingested_at=d.ingested_at)
            for d in Catalog(settings.catalog_path).documents() if d.path.startswith(PUSHED)
        ]  # fmt: skip
        return JSONResponse(PushedListOut(documents=listed).model_dump())

    app.include_router(documents)

    @app.get("/healthz", responses={200: {"model": HealthOut}, **errors(503)})
    def healthz(auth: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> JSONResponse:
        """200 {"status": "ok"} when the index is loaded and holds chunks, 503 otherwise; with a server key,
        also the number of chunks and the feedback store's size."""
        pipeline = lazy.get()
        pipeline.ensure_ready()
        chunks = pipeline.store.count()  # reaches the store: 503 when it is down
        if not access.is_server(token_of(auth)):
            return JSONResponse({"status": "ok"})
        usage = store.usage()
        return JSONResponse(
            {"status": "ok", "chunks": chunks, "feedback_rows": usage.rows, "feedback_bytes": usage.bytes,
             "feedback_max_bytes": server.feedback_max_bytes}
        )  # fmt: skip

    @app.get("/widget.js", response_class=Response, responses={200: content("text/javascript", "The script")})
    def widget() -> Response:
        """The embeddable chat widget (see the README for the script tag)."""
        headers = {"Cache-Control": "public, max-age=300", "Cross-Origin-Resource-Policy": "cross-origin"}
        return Response(static("widget.js"), media_type="text/javascript; charset=utf-8", headers=headers)

    @app.get("/widget/demo", response_class=Response, responses={200: content("text/html", "The page")})
    def demo() -> HTMLResponse:
        """An example wiki page that embeds the widget."""
        return HTMLResponse(static("demo.html"), headers=pages)

    @app.get("/widget/demo.js", include_in_schema=False)
    def demo_script() -> Response:
        return Response(static("demo.js"), media_type="text/javascript; charset=utf-8")

    if server.docs:

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return HTMLResponse(static("docs.html"), headers=pages)

        @app.get("/docs/{name}", include_in_schema=False)
        def docs_file(name: str) -> Response:
            types = {"docs.js": "text/javascript", "swagger-ui-bundle.js": "text/javascript",
                     "swagger-ui.css": "text/css"}  # fmt: skip
            if name not in types:
                raise ApiError(404, "not_found", f"no file {name[:80]!r} under /docs")
            cache = {"Cache-Control": "public, max-age=86400"}
            return Response(static(name), media_type=f"{types[name]}; charset=utf-8", headers=cache)

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
    for kind in HANDLED:
        app.add_exception_handler(kind, on_error)
    # Middleware, innermost first: the body limit (and the documents API's key), CORS, the host check, the
    # security headers, then (when proxies are configured) the client address from X-Forwarded-For.
    app.add_middleware(
        BodyLimit,
        limit=server.max_body_bytes,
        document_limit=server.max_document_bytes,
        admin=access.check_admin,
    )
    app.add_middleware(
        Cors,
        allow_origins=server.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["Retry-After"],
        max_age=600,
    )
    app.add_middleware(HostGuard, allowed=allowed_hosts(server))
    app.add_middleware(SecurityHeaders)  # outside the host check: its 400 carries them too
    if server.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=server.trusted_proxies)
    return app


WORKER_SETTINGS = "RAG_WORKER_SETTINGS"  # `rag serve --workers N`: the settings the command resolved, as JSON


def worker_app() -> FastAPI:
    """The app of one worker process of `rag serve --workers N` (uvicorn imports this factory in each),
    with its pipeline loaded before it serves; a pipeline that cannot be built yet is retried per request."""
    import os

    settings = Settings.model_validate_json(os.environ[WORKER_SETTINGS])
    pipeline: Pipeline | None = None
    try:
        pipeline = build_pipeline(settings)
        pipeline.load_model()
    except Exception as exc:  # /healthz says why; the first request retries
        log.warning("worker %s starts without an index: %s", os.getpid(), exc)
        pipeline = None
    return create_app(settings, pipeline)


def server_config(app: ASGIApp | str, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the app (or the import string of its factory): its own X-Forwarded-*
    handling off (the app believes them only from server.trusted_proxies), no `Server` header."""
    return uvicorn.Config(app, host=host, port=port, proxy_headers=False, server_header=False, **options)
