"""Rate limits on Redis with the ``limits`` library, so they hold across replicas.

* RATE_LIMIT_ANONYMOUS per client IP for requests without a valid token;
* RATE_LIMIT_USER per user for requests with one;
* RATE_LIMIT_AUTH per client IP, in addition, on the credential routes.

Moving windows: a client never gets twice its rate across a window boundary.
With Redis down the gateway keeps serving and counts in process memory
(``MemoryStorage``): each replica then allows the full rate on its own, which
is logged and counted, and comes back to the shared counts by itself.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from gateway.metrics import RATE_LIMIT_REJECTIONS, REDIS_DEGRADED
from gateway.redis_guard import RedisGuard


@dataclass(frozen=True, slots=True)
class LimitState:
    name: str
    limit: int
    remaining: int
    reset_after: int
    allowed: bool


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    reported: LimitState

    def headers(self) -> list[tuple[bytes, bytes]]:
        state = self.reported
        headers = [
            (b"ratelimit-limit", str(state.limit).encode()),
            (b"ratelimit-remaining", str(state.remaining).encode()),
            (b"ratelimit-reset", str(state.reset_after).encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(max(1, state.reset_after)).encode()))
        return headers


def redis_limits_storage(redis_url: str, *, key_prefix: str, timeout_seconds: float) -> Storage:
    """The ``async+redis://`` storage, on redis-py, with short timeouts."""
    return RedisStorage(
        f"async+{redis_url}",
        implementation="redispy",
        key_prefix=f"{key_prefix}limits",
        wrap_exceptions=True,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
    )


class RateLimiter:
    def __init__(
        self,
        storage: Storage,
        redis_guard: RedisGuard,
        *,
        anonymous: str,
        user: str,
        auth: str,
    ) -> None:
        self._storage = storage
        self._shared = MovingWindowRateLimiter(storage)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._redis_guard = redis_guard
        self._anonymous = parse(anonymous)
        self._user = parse(user)
        self._auth = parse(auth)

    async def check(self, *, user_id: str | None, client_ip: str, auth_route: bool) -> RateDecision:
        checks: list[tuple[str, RateLimitItem, str]] = [
            ("user", self._user, user_id) if user_id else ("anonymous", self._anonymous, client_ip)
        ]
        if auth_route:
            checks.append(("auth", self._auth, client_ip))
        if self._redis_guard.available:
            try:
                decision = await self._decide(self._shared, checks)
            except StorageError as exc:
                self._redis_guard.failed("rate_limit", exc)
            else:
                self._redis_guard.succeeded()
                return decision
        REDIS_DEGRADED.labels("rate_limit").inc()
        return await self._decide(self._local, checks)

    async def _decide(
        self, limiter: MovingWindowRateLimiter, checks: list[tuple[str, RateLimitItem, str]]
    ) -> RateDecision:
        states: list[LimitState] = []
        for name, item, identity in checks:
            allowed = await limiter.hit(item, name, identity)
            stats = await limiter.get_window_stats(item, name, identity)
            state = LimitState(
                name=name,
                limit=item.amount,
                remaining=stats.remaining,
                reset_after=max(0, math.ceil(stats.reset_time - time.time())),
                allowed=allowed,
            )
            if not allowed:
                RATE_LIMIT_REJECTIONS.labels(name).inc()
                return RateDecision(allowed=False, reported=state)
            states.append(state)
        return RateDecision(allowed=True, reported=min(states, key=lambda s: s.remaining))

    async def close(self) -> None:
        bridge = getattr(self._storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        aclose = getattr(client, "aclose", None)
        if aclose is not None:
            await aclose()
