"""The HTTP API and the wiki widget: `create_app(settings)` is a FastAPI app over the same pipeline as the CLI.
Its routes are `rag.api.routes`, the state they share `rag.api.service`.

POST /v1/ask (the `rag ask --json` object), POST /v1/ask/stream (Server-Sent Events: delta, citation,
done, error), GET /v1/passages/{chunk_id}, GET /v1/sources, POST /v1/feedback, GET /healthz,
GET /widget.js, GET /widget/demo; PUT/DELETE /v1/documents/{doc_id} and GET /v1/documents (admin keys:
a wiki's webhooks); OpenAPI at /docs. Who may call what is `rag.api.access`; every error is
`{"error": {"code", "message"}}` with a one-line message and never a stack trace or a server path.
"""

import logging
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from rag.api.access import Attempt, Caller, HostGuard, allowed_hosts
from rag.api.errors import HANDLED, ApiError, as_api_error
from rag.api.models import errors
from rag.api.pages import SecurityHeaders
from rag.api.routes import ask_router, documents_router, feedback_router, pages_router
from rag.api.service import Service
from rag.pipeline import Pipeline, build_pipeline
from rag.settings import Settings

log = logging.getLogger("rag.api")


# ---- the middleware: CORS with JSON refusals, the body limit ----


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


# ---- the app ----


def create_app(settings: Settings, pipeline: Pipeline | None = None) -> FastAPI:
    """The API over `pipeline` (built from `settings` on first use when not given): its routers, error
    handlers and middleware."""
    server = settings.server
    service = Service(settings, pipeline)
    access = service.access
    app = FastAPI(
        title="rag-chat",
        summary="Answers with verified citations from your documents.",
        version="1",
        responses=errors(404),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if server.docs else None,
    )
    for router in (ask_router, feedback_router, documents_router, pages_router):
        app.include_router(router(service))

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
