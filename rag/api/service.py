"""What the API's routes share: the settings, the pipeline (built on first use and kept in step with other
processes' changes), who may call (`rag.api.access`), the feedback store, and the dependencies that check a
request's key."""

import logging
import threading
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rag.api.access import Access, Attempt, Caller
from rag.api.pages import page_headers
from rag.feedback import FeedbackStore
from rag.index.embeddings import for_index
from rag.index.replica import catch_up, local_version
from rag.pipeline import Pipeline, build_pipeline
from rag.settings import Settings

log = logging.getLogger("rag.api")

BEARER = HTTPBearer(
    auto_error=False, description="A server key (server.api_keys) or a browser key (server.browser_keys)."
)
Auth = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


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


class Service:
    """The state every route reads, and the key checks routes depend on (`caller`, `admin`)."""

    def __init__(self, settings: Settings, pipeline: Pipeline | None = None) -> None:
        server = settings.server
        self.settings = settings
        self.lazy = LazyPipeline(settings, pipeline)
        self.access = Access(server, settings.store.collection)
        self.feedback_limit = self.access.limiter("feedback", server.feedback_per_minute, "feedback posts")
        self.feedback = FeedbackStore(
            settings.feedback_path, server.feedback_max_bytes, server.feedback_sender_bytes
        )
        self.pages = page_headers(server.cors_origins)

    @staticmethod
    def token_of(auth: HTTPAuthorizationCredentials | None) -> str | None:
        return auth.credentials if auth is not None else None

    def attempt(self, request: Request, auth: HTTPAuthorizationCredentials | None) -> Attempt:
        client = request.client.host if request.client else ""
        origin, host = request.headers.get("origin"), request.headers.get("host", "")
        return Attempt(client, self.token_of(auth), origin, request.url.scheme, host)

    async def caller(self, request: Request, auth: Auth) -> Caller:
        """The key (when keys are configured), the browser origin, then the caller's rate limit."""
        who = self.access.check(self.attempt(request, auth))
        self.lazy.poll()  # every /v1 request may notice another process's change (the catalog's readers too)
        return who

    async def admin(self, request: Request, auth: Auth) -> Caller:
        """An admin key (server.admin_keys): the only kind that may write documents (checked by
        `BodyLimit` before the body is read)."""
        checked = getattr(request.state, "admin", None)
        return (
            checked if isinstance(checked, Caller) else self.access.check_admin(self.attempt(request, auth))
        )
