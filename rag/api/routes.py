"""The API's routes, one router each: questions (`/v1/ask`, passages, sources, examples), feedback, the
documents a wiki pushes (`/v1/documents`, admin keys), and the pages (health, the widget, the docs)."""

import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from ingest.indexer import put_document, remove_document
from ingest.loaders import PUSHED, LoaderError, pushed_document
from rag.api.access import Caller
from rag.api.errors import ApiError, as_api_error
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
from rag.api.pages import static
from rag.api.service import Auth, Service
from rag.index.catalog import Catalog
from rag.pipeline import clean_question, parse_history
from rag.types import CitationEvent, Event, TextDelta

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


# ---- the routers ----


def ask_router(s: Service) -> APIRouter:
    """Questions and what answers cite: /v1/ask, /v1/ask/stream, /v1/passages, /v1/sources, /v1/examples."""
    settings, lazy = s.settings, s.lazy
    api = APIRouter(prefix="/v1", dependencies=[Depends(s.caller)], responses=errors(*AUTH_ERRORS))

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

    return api


def feedback_router(s: Service) -> APIRouter:
    """POST /v1/feedback."""
    api = APIRouter(prefix="/v1", dependencies=[Depends(s.caller)], responses=errors(*AUTH_ERRORS))

    @api.post("/feedback", status_code=201, responses={201: {"model": FeedbackOut}})
    def feedback(body: FeedbackIn, who: Annotated[Caller, Depends(s.caller)]) -> JSONResponse:
        """Thumbs up (1) or down (-1) on an answer, stored with the question, answer and citations; at most
        server.feedback_per_minute posts a minute per client; the store keeps its newest rows within
        server.feedback_max_bytes, and each sender's within server.feedback_sender_bytes."""
        s.feedback_limit.check(who.client)
        citations = [c.stored() for c in body.citations]
        sender = f"{who.key} key {who.index}" if who.key in ("server", "admin") else f"client {who.client}"
        new = s.feedback.add(
            body.rating, body.question, body.answer, citations, body.comment, origin="api", who=sender
        )
        return JSONResponse({"id": new}, status_code=201)

    return api


def documents_router(s: Service) -> APIRouter:
    """The pages a wiki pushes: PUT, DELETE and GET /v1/documents (admin keys)."""
    settings, lazy = s.settings, s.lazy
    documents = APIRouter(
        prefix="/v1/documents", dependencies=[Depends(s.admin)], responses=errors(*AUTH_ERRORS)
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

    return documents


def pages_router(s: Service) -> APIRouter:
    """GET /healthz, the widget's script and demo page, and the OpenAPI page (`server.docs`)."""
    router, server, pages = APIRouter(), s.settings.server, s.pages

    @router.get("/healthz", responses={200: {"model": HealthOut}, **errors(503)})
    def healthz(auth: Auth) -> JSONResponse:
        """200 {"status": "ok"} when the index is loaded and holds chunks, 503 otherwise; with a server key,
        also the number of chunks and the feedback store's size."""
        pipeline = s.lazy.get()
        pipeline.ensure_ready()
        chunks = pipeline.store.count()  # reaches the store: 503 when it is down
        if not s.access.is_server(s.token_of(auth)):
            return JSONResponse({"status": "ok"})
        usage = s.feedback.usage()
        return JSONResponse(
            {"status": "ok", "chunks": chunks, "feedback_rows": usage.rows, "feedback_bytes": usage.bytes,
             "feedback_max_bytes": server.feedback_max_bytes}
        )  # fmt: skip

    @router.get(
        "/widget.js", response_class=Response, responses={200: content("text/javascript", "The script")}
    )
    def widget() -> Response:
        """The embeddable chat widget (see the README for the script tag)."""
        headers = {"Cache-Control": "public, max-age=300", "Cross-Origin-Resource-Policy": "cross-origin"}
        return Response(static("widget.js"), media_type="text/javascript; charset=utf-8", headers=headers)

    @router.get("/widget/demo", response_class=Response, responses={200: content("text/html", "The page")})
    def demo() -> HTMLResponse:
        """An example wiki page that embeds the widget."""
        return HTMLResponse(static("demo.html"), headers=pages)

    @router.get("/widget/demo.js", include_in_schema=False)
    def demo_script() -> Response:
        return Response(static("demo.js"), media_type="text/javascript; charset=utf-8")

    if server.docs:

        @router.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return HTMLResponse(static("docs.html"), headers=pages)

        @router.get("/docs/{name}", include_in_schema=False)
        def docs_file(name: str) -> Response:
            types = {"docs.js": "text/javascript", "swagger-ui-bundle.js": "text/javascript",
                     "swagger-ui.css": "text/css"}  # fmt: skip
            if name not in types:
                raise ApiError(404, "not_found", f"no file {name[:80]!r} under /docs")
            cache = {"Cache-Control": "public, max-age=86400"}
            return Response(static(name), media_type=f"{types[name]}; charset=utf-8", headers=cache)

    return router
