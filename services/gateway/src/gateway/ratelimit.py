"""Rate limits on Redis, so they hold across gateway replicas (ADR 0009).

* RATE_LIMIT_ANONYMOUS per client IP for requests without a valid token;
* RATE_LIMIT_USER per user for requests with one;
* RATE_LIMIT_AUTH per client IP, in addition, on the credential routes.

Moving windows: a client never gets twice its rate across a window boundary.
On Redis, every limit of a request is decided by one Lua script that the
gateway owns (:data:`MOVING_WINDOW_LUA`): a sorted set of request times per
key, trimmed to the window, counted, and added to when there is room; the
script answers with the count and the oldest entry, which give the
``RateLimit-*`` headers, in the same round trip. The requests that reach the
limiter in the same turn of the event loop share one call of the script
(ADR 0018): each is still counted against Redis before it is answered, in the
order it arrived, so the limits are as exact as one call per request. The rate strings are parsed
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

from emporium_kit.batching import TickBatcher
from emporium_kit.client_ip import rate_limit_key
from emporium_kit.identity.tokens import Principal
from gateway.metrics import RATE_LIMIT_REJECTIONS, REDIS_DEGRADED
from gateway.redis_guard import RedisGuard

MOVING_WINDOW_LUA = """
-- The limits of a batch of requests, in the order the requests arrived.
-- KEYS: for each request, one sorted set per limit, in the order they are checked.
-- ARGV: now (seconds, float), a prefix unique to this batch (a request's member
-- in the sets is the prefix and its position), then for each request the
-- number of its limits and, for each limit, its amount and window in seconds.
-- Returns, for each request, for each limit checked: {allowed (1/0), entries
-- in the window (after this request), oldest entry's time as a string}.
-- A request's checking stops at the first limit that refuses; the limits
-- before it keep their entry.
local now = tonumber(ARGV[1])
local batch = ARGV[2]
local k, a = 1, 3
local results = {}
local r = 0
while a <= #ARGV do
  r = r + 1
  local limits = tonumber(ARGV[a])
  a = a + 1
  local member = batch .. r
  local checked = {}
  for i = 1, limits do
    local key = KEYS[k]
    local amount = tonumber(ARGV[a])
    local window = tonumber(ARGV[a + 1])
    k, a = k + 1, a + 2
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
    checked[i] = {allowed, count, oldest}
    if allowed == 0 then
      k, a = k + limits - i, a + 2 * (limits - i)
      break
    end
  end
  results[r] = checked
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
    """The limits of every request, decided by :data:`MOVING_WINDOW_LUA`: one script
    call for all the requests of one event-loop turn (:class:`TickBatcher`, ADR 0018)."""

    def __init__(self, redis: Redis, *, key_prefix: str) -> None:
        # redis-py's Script sends EVALSHA and loads the script on NOSCRIPT itself.
        self._script = redis.register_script(MOVING_WINDOW_LUA)
        self._prefix = f"{key_prefix}limits:"
        self._batcher: TickBatcher[list[Check], list[tuple[bool, WindowStats]]] = TickBatcher(
            self._hit_batch
        )

    def key(self, name: str, item: RateLimitItem, identity: str) -> str:
        return f"{self._prefix}{name}:{item.amount}/{item.get_expiry()}:{identity}"

    async def hit(self, checks: list[Check]) -> list[tuple[bool, WindowStats]]:
        """Counts one request against ``checks``, in order, stopping at the first refusal."""
        return await self._batcher(checks)

    async def _hit_batch(self, requests: list[list[Check]]) -> list[list[tuple[bool, WindowStats]]]:
        now = time.time()
        keys: list[str] = []
        args: list[Any] = [repr(now), f"{uuid.uuid4().hex}:"]
        for checks in requests:
            args.append(len(checks))
            for name, item, identity in checks:
                keys.append(self.key(name, item, identity))
                args += [item.amount, item.get_expiry()]
        answers: list[list[list[Any]]] = await self._script(keys=keys, args=args)
        return [
            [
                (
                    bool(allowed),
                    WindowStats(
                        float(oldest) + item.get_expiry(), max(0, item.amount - int(count))
                    ),
                )
                for (_, item, _), (allowed, count, oldest) in zip(checks, rows, strict=False)
            ]
            for checks, rows in zip(requests, answers, strict=True)
        ]


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
