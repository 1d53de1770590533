"""What the replicas of the service share, in Redis (`server.redis_url`): a client, the key namespace, and
a lock that any process on any machine can hold.

Imported only when `server.redis_url` is set (importing `redis` takes a third of a second).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

import redis
from redis.exceptions import RedisError

__all__ = ["Lock", "RedisError", "connect", "namespace", "one_line"]

log = logging.getLogger("rag.shared")

TIMEOUT = 2.0  # seconds: an unreachable Redis fails a request quickly instead of hanging it

# Renew only while the token is ours; delete only while it is ours (a lock that expired and was taken by
# another process is left to that process).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def connect(url: str) -> redis.Redis:
    """A client of the Redis at `url`; it connects on its first command, not here."""
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)


def namespace(collection: str) -> str:
    """The prefix of every key of one index (a Chroma collection): `rag:{collection}`."""
    return f"rag:{collection}"


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class Lock:
    """An exclusive lock in Redis: SET NX PX with a random token and a short TTL, renewed by a daemon thread
    while held (so a killed holder frees it within `ttl` seconds), released by compare-and-delete. A waiter
    calls `on_wait()` once, then polls until it gets the lock. `acquire` raises `RedisError` when Redis
    cannot be reached; renewal and release only log it (the lock then expires by itself)."""

    def __init__(self, client: redis.Redis, key: str, ttl: float = 30.0, poll: float = 0.1) -> None:
        self.client, self.key, self.ttl, self.poll = client, key, ttl, min(poll, ttl / 4)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._token: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    def acquire(self, on_wait: Callable[[], None] | None = None) -> None:
        token = secrets.token_hex(16)
        waited = False
        while not self.client.set(self.key, token, nx=True, px=self._ttl_ms):
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            time.sleep(self.poll)
        self._token = token
        self._stop.clear()
        self._renewer = threading.Thread(target=self._keep, args=(token,), name="redis-lock", daemon=True)
        self._renewer.start()

    def _keep(self, token: str) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self._renew(keys=[self.key], args=[token, self._ttl_ms]):
                    log.warning(
                        "the lock %s expired while held (Redis unreachable for %s s?)", self.key, self.ttl
                    )
                    return
            except RedisError as exc:
                log.warning("could not renew the lock %s: %s", self.key, one_line(exc))

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        token, self._token = self._token, None
        if token is None:
            return
        try:
            self._release(keys=[self.key], args=[token])
        except RedisError as exc:  # it expires within the TTL
            log.warning("could not release the lock %s: %s", self.key, one_line(exc))
