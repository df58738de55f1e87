"""Rate limits on Redis, so they hold across gateway replicas (ADR 0009).

* RATE_LIMIT_ANONYMOUS per client IP for requests without a valid token;
* RATE_LIMIT_USER per user for requests with one;
* RATE_LIMIT_AUTH per client IP, in addition, on the credential routes.

Moving windows: a client never gets twice its rate across a window boundary.
On Redis, every limit of a request is decided by one Lua script that the
gateway owns (:data:`gateway.redis_turn.TURN_LUA`): a sorted set of request
times per key, trimmed to the window, counted, and added to when there is
room; the script answers with the count and the oldest entry, which give the
``RateLimit-*`` headers, in the same round trip. The requests that reach the
limiter in the same turn of the event loop share one call of the script
(ADR 0018), with that turn's cache lookups and stores (ADR 0024): each is
still counted against Redis before it is answered, in the order it arrived, so
the limits are as exact as one call per request. An anonymous catalogue read
has its cached page read in the same op, once its limits allow it. The rate
strings are parsed by the ``limits`` library (its ``N/period`` notation is the
contract's).

With Redis down the gateway keeps serving and counts in process memory with
``limits``' own moving window (public API): each replica then allows the full
rate on its own, which is logged and counted, and comes back to the shared
counts by itself.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.util import WindowStats
from redis.exceptions import RedisError

from emporium_kit.client_ip import rate_limit_key
from emporium_kit.identity.revocations import revocation_keys
from emporium_kit.identity.tokens import Principal
from gateway.metrics import RATE_LIMIT_REJECTIONS, REDIS_DEGRADED
from gateway.redis_guard import RedisGuard
from gateway.redis_turn import Counted, Limits, RedisTurn, RevocationRead

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
    counted: Counted | None = None
    """The shared count's answer, with the cache entry read for the request when it
    asked for one; None when the limits were counted in process (Redis down)."""
    revoked: bool | None = None
    """For a request whose token was to be checked in the same call: whether it is
    revoked; None when it was not checked (no token asked for it, or Redis down)."""

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


class RedisMovingWindow:
    """The limits of every request, decided by the gateway's turn script
    (:data:`gateway.redis_turn.TURN_LUA`): one script call for all the requests of
    one event-loop turn, with the cache lookups and stores of that turn (ADR 0024)."""

    def __init__(self, turn: RedisTurn, *, key_prefix: str) -> None:
        self._turn = turn
        self._prefix = f"{key_prefix}limits:"

    def key(self, name: str, item: RateLimitItem, identity: str) -> str:
        return f"{self._prefix}{name}:{item.amount}/{item.get_expiry()}:{identity}"

    async def hit(
        self,
        checks: list[Check],
        *,
        entry_suffix: str | None = None,
        token: Principal | None = None,
        revoked_checks: list[Check] | None = None,
    ) -> tuple[list[tuple[bool, WindowStats]], Counted]:
        """Counts one request against ``checks``, in order, stopping at the first
        refusal; with ``entry_suffix``, reads that cache entry if every check allows.
        With ``token``, its revocation is read first and, if it is revoked
        (``Counted.revoked``), the request is counted against ``revoked_checks``
        instead (:func:`counted_checks` says which were counted)."""
        counted = await self._turn.count(
            Limits(
                keys=self._keys(checks),
                windows=_windows(checks),
                entry_suffix=entry_suffix,
                revocation=None
                if token is None
                else RevocationRead(
                    token_keys=revocation_keys(token),
                    token_version=token.token_version,
                    keys=self._keys(revoked_checks or []),
                    windows=_windows(revoked_checks or []),
                ),
            )
        )
        decided = [
            (allowed, WindowStats(oldest + item.get_expiry(), max(0, item.amount - count)))
            for (_, item, _), (allowed, count, oldest) in zip(
                counted_checks(checks, revoked_checks, counted), counted.checked, strict=False
            )
        ]
        return decided, counted

    def _keys(self, checks: list[Check]) -> list[str]:
        return [self.key(name, item, identity) for name, item, identity in checks]


def _windows(checks: list[Check]) -> list[tuple[int, int]]:
    return [(item.amount, item.get_expiry()) for _, item, _ in checks]


def counted_checks(
    checks: list[Check], revoked_checks: list[Check] | None, counted: Counted
) -> list[Check]:
    """The checks a :meth:`RedisMovingWindow.hit` counted: a revoked token's instead
    of its user's."""
    return revoked_checks if counted.revoked and revoked_checks is not None else checks


class RateLimiter:
    def __init__(
        self,
        turn: RedisTurn,
        redis_guard: RedisGuard,
        *,
        key_prefix: str,
        anonymous: str,
        user: str,
        auth: str,
    ) -> None:
        self._shared = RedisMovingWindow(turn, key_prefix=key_prefix)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._redis_guard = redis_guard
        self._anonymous = parse(anonymous)
        self._user = parse(user)
        self._auth = parse(auth)

    async def check(
        self,
        *,
        principal: Principal | None,
        client_ip: str,
        auth_route: bool,
        entry_suffix: str | None = None,
        check_revocation: bool = False,
    ) -> RateDecision:
        """Counts a request of ``principal`` (None: no accepted token) from ``client_ip``.

        Per-IP limits count an IPv6 client by its /64 (:func:`rate_limit_key`).
        ``entry_suffix``: the cache entry this request would be served, read in the
        same round trip when its limits allow it (``RateDecision.counted``).
        ``check_revocation``: ``principal``'s token is verified but not yet checked
        for revocation; the same round trip checks it (``RateDecision.revoked``) and
        counts a revoked token as a request without one.
        """
        ip_key = rate_limit_key(client_ip)
        auth: list[Check] = [("auth", self._auth, ip_key)] if auth_route else []
        anonymous: list[Check] = [("anonymous", self._anonymous, ip_key), *auth]
        checks = (
            [("user", self._user, str(principal.user_id)), *auth]
            if principal is not None
            else anonymous
        )
        token = principal if check_revocation else None
        if self._redis_guard.available:
            try:
                decided, counted = await self._shared.hit(
                    checks, entry_suffix=entry_suffix, token=token, revoked_checks=anonymous
                )
            except (RedisError, OSError) as exc:
                self._redis_guard.failed("rate_limit", exc)
            else:
                self._redis_guard.succeeded()
                return _decision(
                    counted_checks(checks, anonymous, counted),
                    decided,
                    counted,
                    revoked=counted.revoked if token is not None else None,
                )
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


def _decision(
    checks: list[Check],
    decided: list[tuple[bool, WindowStats]],
    counted: Counted | None = None,
    *,
    revoked: bool | None = None,
) -> RateDecision:
    states = [
        _state(name, item, allowed, stats)
        for (name, item, _), (allowed, stats) in zip(checks, decided, strict=False)
    ]
    for state in states:
        if not state.allowed:
            RATE_LIMIT_REJECTIONS.labels(state.name).inc()
            return RateDecision(allowed=False, reported=state, revoked=revoked)
    return RateDecision(
        allowed=True,
        reported=min(states, key=lambda s: s.remaining),
        counted=counted,
        revoked=revoked,
    )
