"""Who may call the API, and how often: host names, keys, origins, client addresses, rate limits.

- **Hosts.** A request whose `Host` is not an allowed name gets 400 before any route (a page whose name
  was rebound to 127.0.0.1 cannot read the API as if it were the server's own page).
- **Keys.** Server keys (`server.api_keys`) are for scripts and back ends: no `Origin` needed, limited per
  key. Browser keys (`server.browser_keys`) are public, written in wiki pages: accepted only with an
  allowed `Origin`, and limited per client address and key, so one client cannot exhaust a key for the
  others. Missing and wrong keys are limited per client address. Without server or browser keys, loopback
  clients only. Admin keys (`server.admin_keys`) alone may write documents, and read as server keys do.
- **Rate limits.** Counted in this process, or in Redis with `server.redis_url` (exact across replicas).
- **Client addresses.** The connection's peer, unless it is one of `server.trusted_proxies`: then the
  right-most address of `X-Forwarded-For` that is not a trusted proxy (uvicorn's ProxyHeadersMiddleware,
  applied only when proxies are configured).
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from rag.api.errors import ApiError
from rag.api.ratelimit import Limiters, RateLimiter
from rag.settings import ServerSettings, StoreSettings

CHALLENGE = {"WWW-Authenticate": "Bearer"}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_COLLECTION = StoreSettings().collection


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name of a `Host` header without its port, lower-cased: "[::1]:8000" -> "::1"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def allowed_hosts(server: ServerSettings) -> frozenset[str] | None:
    """The host names the server answers to; None = any (`*`)."""
    names = [host_name(h) for h in server.allowed_hosts]
    if "*" in names:
        return None
    listen = server.host.strip("[]").lower()
    unspecified = listen in ("0.0.0.0", "::", "")
    return frozenset([*names, *LOOPBACK_NAMES, *([] if unspecified else [listen])])


class HostGuard:
    """ASGI middleware: 400 for a `Host` header outside the allowed names, before any route runs."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            header = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
            if host_name(header) not in self.allowed:
                shown = header[:80] or "(none)"
                error = ApiError(
                    400,
                    "host_not_allowed",
                    f"host {shown!r} is not in server.allowed_hosts; ask the operator",
                )
                return await error.response()(scope, receive, send)
        await self.app(scope, receive, send)


def limiters(server: ServerSettings, collection: str) -> Limiters:
    """The backend `server.redis_url` chooses: unset, windows in this process; set, windows in Redis that
    every replica of the index `collection` shares."""
    if server.redis_url is None:
        return lambda name, per_minute, what: RateLimiter(per_minute, what)
    from rag.api.redis_limits import redis_limiters  # imports redis: only when it is used

    return redis_limiters(server.redis_url, collection)


@dataclass(frozen=True)
class Attempt:
    """What a request presents: its client address, bearer key, browser `Origin`, scheme and `Host`."""

    client: str
    token: str | None
    origin: str | None
    scheme: str
    host: str


@dataclass(frozen=True)
class Caller:
    """Who is calling: the client address and the key it authenticated with (if any)."""

    client: str
    key: Literal["server", "browser", "admin", "none"]
    index: int = -1


def _match(token: bytes, keys: list[bytes]) -> int:
    matches = [hmac.compare_digest(token, key) for key in keys]  # no early exit: constant time
    return matches.index(True) if any(matches) else -1


class Access:
    """The checks of every /v1 request, in order: key (a missing or wrong one counts against its client's
    failed-key limit), origin, rate limit. With
    `server.redis_url`, the limits are kept in Redis under the index's `collection`."""

    def __init__(self, server: ServerSettings, collection: str = DEFAULT_COLLECTION) -> None:
        self.server = server
        self.server_keys = [k.encode() for k in server.api_keys]
        self.browser_keys = [k.encode() for k in server.browser_keys]
        self.admin_keys = [k.encode() for k in server.admin_keys]
        self.limiter = limiter = limiters(server, collection)  # also for the app's other limits
        self.requests = limiter("requests", server.rate_limit_per_minute, "requests")
        self.browser_requests = limiter("browser", server.browser_rate_limit_per_minute, "requests")
        self.failures = limiter(
            "failures", server.auth_failures_per_minute, "requests with a missing or wrong key"
        )

    def origin_allowed(self, origin: str, scheme: str, host: str) -> bool:
        """A listed origin, or the server's own (same scheme and Host, which HostGuard allowed)."""
        return origin in self.server.cors_origins or origin == f"{scheme}://{host}"

    def _origin(self, attempt: Attempt) -> None:
        """403 for a browser origin that is neither listed nor the server's own."""
        origin = attempt.origin
        if origin is not None and not self.origin_allowed(origin, attempt.scheme, attempt.host):
            raise ApiError(403, "origin_not_allowed", f"origin {origin} is not in server.cors_origins")

    def _key(self, attempt: Attempt, kind: str) -> bytes:
        """The presented key; a missing key is a failure (401, or 429 over the failed-key limit)."""
        if attempt.token is None:
            self._fail(attempt)
            raise ApiError(401, "missing_key", f"send {kind}: Authorization: Bearer KEY", CHALLENGE)
        return attempt.token.encode()

    def _fail(self, attempt: Attempt) -> None:
        """Count a missing or wrong key against its client address: 429 once over the limit. Failures count
        against failures only: a valid key from the same address (clients behind one NAT, the wiki's
        webhook) is never locked out."""
        self.failures.check(attempt.client, record=False)
        self.failures.record(attempt.client)

    def _invalid(self, attempt: Attempt) -> ApiError:
        self._fail(attempt)
        return ApiError(401, "invalid_key", "the API key is not valid", CHALLENGE)

    def check(self, attempt: Attempt) -> Caller:
        client, origin = attempt.client, attempt.origin
        if not (self.server_keys or self.browser_keys):
            if not is_loopback(client):
                raise ApiError(
                    403, "loopback_only", "no API keys are configured: only loopback clients may call"
                )
            self._origin(attempt)
            self.requests.check(f"client {client}")
            return Caller(client, "none")
        token = self._key(attempt, "an API key")
        server_index = _match(token, self.server_keys + self.admin_keys)  # an admin key reads too
        browser_index = _match(token, self.browser_keys)
        if server_index < 0 and browser_index < 0:
            raise self._invalid(attempt)
        self._origin(attempt)
        if server_index >= 0:
            self.requests.check(f"key {server_index}")
            return Caller(client, "server", server_index)
        if origin is None:
            raise ApiError(
                403,
                "origin_required",
                "a browser key is accepted only from a wiki page in server.cors_origins",
            )
        self.browser_requests.check(f"key {browser_index} client {client}")
        return Caller(client, "browser", browser_index)

    def check_admin(self, attempt: Attempt) -> Caller:
        """Writes: an admin key only (a read key gets 403), never from a foreign browser origin."""
        if not self.admin_keys:
            raise ApiError(403, "push_disabled", "the push API is off: the operator sets server.admin_keys")
        token = self._key(attempt, "an admin key")
        index = _match(token, self.admin_keys)
        if index < 0:
            if _match(token, self.server_keys + self.browser_keys) >= 0:
                raise ApiError(
                    403, "admin_key_required", "writing documents needs an admin key (server.admin_keys)"
                )
            raise self._invalid(attempt)
        self._origin(attempt)
        return Caller(attempt.client, "admin", index)

    def is_server(self, token: str | None) -> bool:
        """True for a valid server key (what /healthz shows in detail)."""
        return token is not None and _match(token.encode(), self.server_keys + self.admin_keys) >= 0
