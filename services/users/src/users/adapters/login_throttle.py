"""Per-account login-failure budget on Redis, with the ``limits`` library.

Every login takes an entry of the moving window first (``hit``: one atomic
script that either takes it or refuses), and a correct password clears the
window again. Testing the window, checking the password, then recording the
failure would let concurrent guesses all pass the test before any is counted.

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

from users.domain.model import LoginLockout

log = structlog.get_logger(__name__)

_UNAVAILABLE = (StorageError, RedisError, ConnectionError, OSError, TimeoutError)
_NAMESPACE = "login-failures"


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

    async def take_attempt(self, email: str) -> LoginLockout | None:
        key = self._key(email)
        try:
            if await self._limiter.hit(self._item, _NAMESPACE, key):
                return None
            stats = await self._limiter.get_window_stats(self._item, _NAMESPACE, key)
        except _UNAVAILABLE as exc:
            log.warning("login_throttle_unavailable", error=repr(exc))
            return None
        return LoginLockout(
            limit=self._item.amount,
            retry_after=max(1, math.ceil(stats.reset_time - time.time())),
        )

    async def give_back(self, email: str) -> None:
        # The moving window has no public "return one entry": clearing returns
        # them all, which is what a correct password earns anyway.
        try:
            await self._limiter.clear(self._item, _NAMESPACE, self._key(email))
        except _UNAVAILABLE as exc:
            log.warning("login_throttle_unavailable", error=repr(exc))
