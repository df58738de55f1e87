"""Remembers that Redis just failed, so requests stop paying for it for a moment.

While Redis is down every call would cost a connection attempt (or a timeout
when the host blackholes packets). After a failure, callers skip Redis for
``retry_seconds``; the first call after that tries again. Transitions are
logged once each way rather than once per request.

This is a pause shared by every request, not a retry, hence no tenacity: no
call is ever repeated, and a request never sleeps waiting for Redis (during an
outage every request would be that much slower); it makes at most one Redis
call, or none while Redis is believed down, and goes on without it.
"""

from __future__ import annotations

import time

import structlog

log = structlog.get_logger(__name__)


class RedisGuard:
    def __init__(self, *, retry_seconds: float) -> None:
        self._retry_seconds = retry_seconds
        self._down_until = 0.0
        self._down = False

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    @property
    def believed_down(self) -> bool:
        return self._down

    def failed(self, feature: str, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._retry_seconds
        if not self._down:
            self._down = True
            log.warning("redis_unavailable", feature=feature, error=repr(exc))

    def succeeded(self) -> None:
        if self._down:
            self._down = False
            log.info("redis_recovered")
