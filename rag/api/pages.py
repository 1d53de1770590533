"""The server's pages and their headers: /docs (Swagger UI from the installed package, no CDN), the widget
demo, and the security headers every response carries.

Every response: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, and unless a page sets
its own, a CSP that allows nothing (JSON is never a document to run or frame). Pages: a CSP that allows
only the server's own scripts and styles (no inline script) and framing only by the server itself and
`server.cors_origins`; `X-Frame-Options: SAMEORIGIN` where that is the same rule.
"""

from __future__ import annotations

import functools
from importlib import resources

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOTHING = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
SWAGGER = ("swagger-ui-bundle.js", "swagger-ui.css")  # fastapi-offline's copy of swagger-ui-dist 5


def page_headers(cors_origins: list[str]) -> dict[str, str]:
    """Headers of an HTML page of this server: own scripts only, framed only by itself and the wiki."""
    ancestors = " ".join(["'self'", *cors_origins])
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        f"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )
    headers = {"Content-Security-Policy": csp, "Cache-Control": "no-cache"}
    if not cors_origins:
        headers["X-Frame-Options"] = "SAMEORIGIN"
    return headers


@functools.cache
def static(name: str) -> bytes:
    """A file of rag/static, or of Swagger UI's distribution for the /docs page."""
    if name in SWAGGER:
        return (resources.files("fastapi_offline") / "static" / name).read_bytes()
    return (resources.files("rag") / "static" / name).read_bytes()


class SecurityHeaders:
    """ASGI middleware: the headers every response carries (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Content-Security-Policy", NOTHING)
            await send(message)

        await self.app(scope, receive, with_headers)
