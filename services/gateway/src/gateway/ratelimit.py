"""Rate limits on Redis, so they hold across gateway replicas (ADR 0009).

* RATE_LIMIT_ANONYMOUS per client IP for requests without a valid token;
* RATE_LIMIT_USER per user for requests with one;
* RATE_LIMIT_AUTH per client IP, in addition, on the credential routes.

Moving windows: a client never gets twice its rate across a window boundary.
On Redis, every limit of a request is decided by one call of one Lua script
that the gateway owns (:data:`MOVING_WINDOW_LUA`): a sorted set of request
times per key, trimmed to the window, counted, and added to when there is room;
the script answers with the count and the oldest entry, which give the
``RateLimit-*`` headers, in the same round trip. The rate strings are parsed
by the ``limits`` library (its ``N/period`` notation is the contract's).

With Redis down the gateway keeps serving and counts in process memory with
``limits``' own moving window (public API): each replica then allows the full
rate on its own, which is logged and counted, and comes back to the shared
counts by itself.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.util import WindowStats
from redis.asyncio import Redis
from redis.exceptions import RedisError

from emporium_kit.client_ip import rate_limit_key
from emporium_kit.identity.tokens import Principal
from gateway.metrics import RATE_LIMIT_REJECTIONS, REDIS_DEGRADED
from gateway.redis_guard import RedisGuard

MOVING_WINDOW_LUA = """
-- KEYS: one sorted set per limit, in the order they are checked.
-- ARGV: now (seconds, float), a member unique to this request, then for each
-- key its amount and its window in seconds.
-- Returns, for each key checked: {allowed (1/0), entries in the window
-- (after this request), oldest entry's time as a string}. Checking stops at
-- the first limit that refuses; the limits before it keep their entry.
local now = tonumber(ARGV[1])
local member = ARGV[2]
local results = {}
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  local allowed = 0
  if count < amount then
    redis.call('ZADD', key, now, member)
    count = count + 1
    allowed = 1
  end
  redis.call('EXPIRE', key, math.ceil(window))
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or ARGV[1]
  results[i] = {allowed, count, oldest}
  if allowed == 0 then
    break
  end
end
return results
"""

Check = tuple[str, RateLimitItem, str]


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


class RedisMovingWindow:
    """Every limit of one request, decided by one call of :data:`MOVING_WINDOW_LUA`."""

    def __init__(self, redis: Redis, *, key_prefix: str) -> None:
        # redis-py's Script sends EVALSHA and loads the script on NOSCRIPT itself.
        self._script = redis.register_script(MOVING_WINDOW_LUA)
        self._prefix = f"{key_prefix}limits:"

    def key(self, name: str, item: RateLimitItem, identity: str) -> str:
        return f"{self._prefix}{name}:{item.amount}/{item.get_expiry()}:{identity}"

    async def hit(self, checks: list[Check]) -> list[tuple[bool, WindowStats]]:
        now = time.time()
        args: list[Any] = [repr(now), uuid.uuid4().hex]
        for _, item, _ in checks:
            args += [item.amount, item.get_expiry()]
        rows: list[list[Any]] = await self._script(
            keys=[self.key(name, item, identity) for name, item, identity in checks], args=args
        )
        decided = []
        for (_, item, _), (allowed, count, oldest) in zip(checks, rows, strict=False):
            reset_at = float(oldest) + item.get_expiry()
            decided.append((bool(allowed), WindowStats(reset_at, max(0, item.amount - int(count)))))
        return decided


class RateLimiter:
    def __init__(
        self,
        redis: Redis,
        redis_guard: RedisGuard,
        *,
        key_prefix: str,
        anonymous: str,
        user: str,
        auth: str,
    ) -> None:
        self._shared = RedisMovingWindow(redis, key_prefix=key_prefix)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._redis_guard = redis_guard
        self._anonymous = parse(anonymous)
        self._user = parse(user)
        self._auth = parse(auth)

    async def check(
        self, *, principal: Principal | None, client_ip: str, auth_route: bool
    ) -> RateDecision:
        """Counts a request of ``principal`` (None: no accepted token) from ``client_ip``.

        Per-IP limits count an IPv6 client by its /64 (:func:`rate_limit_key`).
        """
        ip_key = rate_limit_key(client_ip)
        checks: list[Check] = [
            ("user", self._user, str(principal.user_id))
            if principal is not None
            else ("anonymous", self._anonymous, ip_key)
        ]
        if auth_route:
            checks.append(("auth", self._auth, ip_key))
        if self._redis_guard.available:
            try:
                decided = await self._shared.hit(checks)
            except (RedisError, OSError) as exc:
                self._redis_guard.failed("rate_limit", exc)
            else:
                self._redis_guard.succeeded()
                return _decision(checks, decided)
        REDIS_DEGRADED.labels("rate_limit").inc()
        return await self._decide_in_memory(checks)

    async def _decide_in_memory(self, checks: list[Check]) -> RateDecision:
        decided: list[tuple[bool, WindowStats]] = []
        for name, item, identity in checks:
            allowed = await self._local.hit(item, name, identity)
            stats = await self._local.get_window_stats(item, name, identity)
            decided.append((allowed, stats))
            if not allowed:
                break
        return _decision(checks, decided)


def _decision(checks: list[Check], decided: list[tuple[bool, WindowStats]]) -> RateDecision:
    states = [
        _state(name, item, allowed, stats)
        for (name, item, _), (allowed, stats) in zip(checks, decided, strict=False)
    ]
    for state in states:
        if not state.allowed:
            return _refused(state)
    return RateDecision(allowed=True, reported=min(states, key=lambda s: s.remaining))
