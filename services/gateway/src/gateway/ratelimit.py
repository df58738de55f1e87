"""Rate limits on Redis with the ``limits`` library, so they hold across replicas.

* RATE_LIMIT_ANONYMOUS per client IP for requests without a valid token;
* RATE_LIMIT_USER per user for requests with one;
* RATE_LIMIT_AUTH per client IP, in addition, on the credential routes.

Moving windows: a client never gets twice its rate across a window boundary.
With Redis down the gateway keeps serving and counts in process memory
(``MemoryStorage``): each replica then allows the full rate on its own, which
is logged and counted, and comes back to the shared counts by itself.

On Redis, a limit costs one round trip: the library's two moving-window
scripts (take an entry, then read the window for the ``RateLimit-*`` headers)
are sent together in one pipeline, in that order, on the library's own client
and under the library's own keys (:class:`PipelinedMovingWindow`). The
algorithm stays the library's; only the two calls are batched, which its
public API (``hit`` then ``get_window_stats``) cannot do. The credential
routes check a second limit only when the first allows the request, so they
cost two.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.util import WindowStats
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

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


def _state(name: str, item: RateLimitItem, allowed: bool, stats: WindowStats) -> LimitState:
    return LimitState(
        name=name,
        limit=item.amount,
        remaining=stats.remaining,
        reset_after=max(0, math.ceil(stats.reset_time - time.time())),
        allowed=allowed,
    )


def _refused(state: LimitState) -> RateDecision:
    RATE_LIMIT_REJECTIONS.labels(state.name).inc()
    return RateDecision(allowed=False, reported=state)


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


class PipelinedMovingWindow:
    """``hit`` and ``get_window_stats`` of the library's moving window, in one round trip.

    Sends the scripts that ``limits`` registered on its redis-py client
    (``acquire_moving_window`` then ``moving_window``) with the arguments its
    bridge would send, in one non-transactional pipeline, and reads the result
    as ``MovingWindowRateLimiter.get_window_stats`` does. Redis runs the two
    scripts in order, so the window read includes the entry just taken.
    """

    def __init__(self, bridge: RedispyBridge, client: Redis) -> None:
        self._bridge = bridge
        self._client = client
        self._acquire = bridge.lua_acquire_moving_window
        self._window = bridge.lua_moving_window

    @classmethod
    def for_storage(cls, storage: Storage) -> PipelinedMovingWindow | None:
        """None when ``storage`` is not the library's redis-py storage (use the public API)."""
        bridge = getattr(storage, "bridge", None)
        if not isinstance(bridge, RedispyBridge) or not all(
            hasattr(bridge, name)
            for name in ("lua_acquire_moving_window", "lua_moving_window", "prefixed_key")
        ):
            return None
        client: object = bridge.get_connection()
        return cls(bridge, client) if isinstance(client, Redis) else None

    async def hit(self, item: RateLimitItem, *identifiers: str) -> tuple[bool, WindowStats]:
        key = self._bridge.prefixed_key(item.key_for(*identifiers))
        expiry = item.get_expiry()
        now = time.time()
        try:
            acquired, window = await self._send(key, now, item.amount, expiry)
        except NoScriptError:  # Redis restarted or its scripts were flushed: load, once
            for script in (self._acquire, self._window):
                script.sha = await self._client.script_load(script.script)
            acquired, window = await self._send(key, now, item.amount, expiry)
        start, count = (float(window[0]), int(window[1])) if window else (now, 0)
        return bool(acquired), WindowStats(start + expiry, item.amount - count)

    async def _send(self, key: str, now: float, limit: int, expiry: int) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        pipe.evalsha(self._acquire.sha, 1, key, now, limit, expiry, 1)
        pipe.evalsha(self._window.sha, 1, key, now - expiry, limit)
        result: list[Any] = await pipe.execute()
        return result


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
        self._pipelined = PipelinedMovingWindow.for_storage(storage)
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
                if self._pipelined is not None:
                    decision = await self._decide_pipelined(self._pipelined, checks)
                else:
                    decision = await self._decide(self._shared, checks)
            except (StorageError, RedisError, OSError) as exc:
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
            state = _state(name, item, allowed, stats)
            if not allowed:
                return _refused(state)
            states.append(state)
        return RateDecision(allowed=True, reported=min(states, key=lambda s: s.remaining))

    async def _decide_pipelined(
        self, limiter: PipelinedMovingWindow, checks: list[tuple[str, RateLimitItem, str]]
    ) -> RateDecision:
        states: list[LimitState] = []
        for name, item, identity in checks:
            allowed, stats = await limiter.hit(item, name, identity)
            state = _state(name, item, allowed, stats)
            if not allowed:
                return _refused(state)
            states.append(state)
        return RateDecision(allowed=True, reported=min(states, key=lambda s: s.remaining))

    async def close(self) -> None:
        bridge = getattr(self._storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        aclose = getattr(client, "aclose", None)
        if aclose is not None:
            await aclose()
