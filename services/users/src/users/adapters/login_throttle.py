"""Per-account login-failure budget on Redis, with the ``limits`` library.

Keyed by a hash of the normalised email, so the keys say nothing about who
tried, and the answer is the same whether the account exists or not. If Redis
is down the throttle fails open (logged): a broken cache must not lock every
customer out, and the gateway's per-IP auth limit still applies.
"""

from __future__ import annotations

import hashlib
import math
import time

import structlog
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

_UNAVAILABLE = (StorageError, RedisError, ConnectionError, OSError, TimeoutError)


class RedisLoginThrottle:
    def __init__(self, redis: Redis, rate: str) -> None:
        # Shares the service's connection pool, which the lifespan closes.
        self._storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # limits types **options narrowly
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._item = parse(rate)

    @staticmethod
    def _key(email: str) -> str:
        return hashlib.sha256(email.encode()).hexdigest()[:32]

    async def retry_after(self, email: str) -> int | None:
        key = self._key(email)
        try:
            if await self._limiter.test(self._item, "login-failures", key):
                return None
            stats = await self._limiter.get_window_stats(self._item, "login-failures", key)
        except _UNAVAILABLE as exc:
            log.warning("login_throttle_unavailable", error=repr(exc))
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def record_failure(self, email: str) -> None:
        try:
            await self._limiter.hit(self._item, "login-failures", self._key(email))
        except _UNAVAILABLE as exc:
            log.warning("login_throttle_unavailable", error=repr(exc))

    async def reset(self, email: str) -> None:
        try:
            await self._limiter.clear(self._item, "login-failures", self._key(email))
        except _UNAVAILABLE as exc:
            log.warning("login_throttle_unavailable", error=repr(exc))
