"""Rate limits in Redis (`server.redis_url`), exact across the replicas that share it.

Each caller's window is a sorted set of request ids scored by the time they came, at
`rag:{collection}:limit:{name}:{caller}`. One Lua script drops the entries older than a minute, compares the
count with the limit and adds the request, atomically, on the Redis server's clock (`TIME`), so replicas
neither race nor need synchronized clocks; the key expires a minute after its last request.
"""

from __future__ import annotations

import logging
import secrets

from redis.commands.core import Script

from rag.api.errors import ApiError
from rag.api.ratelimit import Limiter, Limiters
from rag.shared import RedisError, connect, namespace, one_line

log = logging.getLogger("rag.api")

# KEYS[1] the caller's window; ARGV: the limit (0 = none), 1 to count this request, its unique id.
# Returns -1 (under the limit) or the microseconds until the oldest request leaves the window.
_WINDOW = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local window = 60000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return tonumber(oldest[2]) + window - now
end
if ARGV[2] == '1' then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[1], 60000)
end
return -1
"""

UNREACHABLE = (
    "the rate limits cannot be checked right now; retry later (the operator finds why in the server log)"
)


class RedisRateLimiter(Limiter):
    """A window per caller in Redis, shared by every process that uses the same `prefix`."""

    def __init__(self, window: Script, prefix: str, per_minute: int, what: str = "requests") -> None:
        super().__init__(per_minute, what)
        self.window, self.prefix = window, prefix

    def hit(self, caller: str, limit: int | None, record: bool) -> float | None:
        args = [limit or 0, 1 if record else 0, secrets.token_hex(8)]
        try:
            wait = int(self.window(keys=[f"{self.prefix}:{caller}"], args=args))
        except RedisError as exc:  # never unlimited: the request is refused
            log.error("rate limits unavailable (server.redis_url): %s", one_line(exc))
            raise ApiError(503, "limits_unavailable", UNREACHABLE) from None
        return None if wait < 0 else wait / 1_000_000


def redis_limiters(url: str, collection: str) -> Limiters:
    """Limiters over one client of the Redis at `url` (connected on the first request)."""
    client = connect(url)
    window = client.register_script(_WINDOW)
    prefix = f"{namespace(collection)}:limit"
    return lambda name, per_minute, what: RedisRateLimiter(window, f"{prefix}:{name}", per_minute, what)
