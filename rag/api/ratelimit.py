"""Rate limits: a sliding one-minute window of requests per caller (`Limiter`), counted in this process
(`RateLimiter`) or in Redis for every replica (`rag.api.redis_limits`); `rag.api.access.limiters` picks
the backend from the settings."""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable

from rag.api.errors import ApiError


class Limiter(ABC):
    """A sliding one-minute window of requests per caller, `per_minute` at most (0 = no limit)."""

    def __init__(self, per_minute: int, what: str = "requests") -> None:
        self.per_minute, self.what = per_minute, what

    @abstractmethod
    def hit(self, caller: str, limit: int | None, record: bool) -> float | None:
        """With `limit` requests of `caller` in the last minute, the seconds until the oldest leaves the
        window; otherwise None, after counting this request when `record` is on."""

    def check(self, caller: str, record: bool = True) -> None:
        """Raise 429 when `caller` is at its limit; otherwise count this request (unless `record` is off)."""
        if self.per_minute:
            wait = self.hit(caller, self.per_minute, record)
            if wait is not None:
                seconds = max(1, math.ceil(wait))
                message = f"more than {self.per_minute} {self.what} a minute; retry in {seconds} s"
                raise ApiError(429, "rate_limited", message, {"Retry-After": str(seconds)})

    def record(self, caller: str) -> None:
        """Count a request of `caller` whatever its count."""
        if self.per_minute:
            self.hit(caller, None, True)


class RateLimiter(Limiter):
    """The window in this process (each replica counts its own); callers without recent hits are forgotten."""

    def __init__(self, per_minute: int, what: str = "requests") -> None:
        super().__init__(per_minute, what)
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def hit(self, caller: str, limit: int | None, record: bool) -> float | None:
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 10_000:  # many callers: drop the idle ones
                for idle in [c for c, h in self._hits.items() if not h or h[-1] <= now - 60]:
                    del self._hits[idle]
            hits = self._hits.setdefault(caller, deque())
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if limit is not None and len(hits) >= limit:
                return hits[0] + 60 - now
            if record:
                hits.append(now)
            return None


Limiters = Callable[[str, int, str], Limiter]  # (name, per_minute, what) -> a limiter
