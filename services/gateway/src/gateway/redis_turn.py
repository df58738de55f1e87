"""The hot path's Redis work of one event-loop turn, as one call of one Lua script.

A request that reaches the gateway asks Redis for up to three things: its rate
limits (:mod:`gateway.ratelimit`), for an anonymous catalogue read the cached
page (:mod:`gateway.cache`), and after a miss the page to store. Batched per
kind (ADR 0018), that was three round trips per turn under load, each with its
command packed, a socket write and read, and a reply parsed: about a quarter of
the gateway's CPU on a cache miss. Here the three kinds share one
:class:`~emporium_kit.batching.TickBatcher` and one script, :data:`TURN_LUA`,
which the gateway owns (ADR 0024):

* a :class:`Limits` op counts one request against its limits, in order,
  stopping at the first refusal (the moving window of ADR 0009), and, when it
  was allowed and names a cache entry, reads that entry under the current
  generation: an anonymous read is limited and looked up in one round trip;
  when it carries a verified token's :class:`RevocationRead`, it first reads
  that token's revocation keys and, if they revoke it, counts the request
  against the limits of a caller without a token instead (a revoked token
  spends its client's budget, never its user's): an authenticated request is
  checked for revocation and limited in one round trip too;
* a :class:`Store` op stores a page under the key it was looked up with.

The ops run in the order they were submitted, each answered on its own. The
script reads the cache generation once per call, before any op.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from emporium_kit.batching import TickBatcher

TURN_LUA = """
-- The ops of one event-loop turn, in the order they were submitted.
-- KEYS[1]: the cache generation counter; then, op by op: for an 'L' op, its
-- token's session flag and user's minimum token version when it has a token
-- to check, then each limit's sorted set, then each sorted set of the limits
-- for a revoked token; for an 'S' op, the entry to store.
-- ARGV[1]: now (seconds, float); ARGV[2]: a prefix unique to this call (an
-- op's member in the sets is the prefix and the op's position); ARGV[3]: the
-- cache entries' key prefix; then, op by op:
--   'L', the number of limits, then each limit's amount and window in seconds,
--        the number of limits for a revoked token, then each one's amount and
--        window, the token's version ('' when there is no token to check),
--        then the cache entry's suffix to read if every limit allows ('' for none);
--   'S', the entry's lifetime in seconds, then its value.
-- A token is revoked when its session is flagged or its version is below its
-- user's minimum (the kit's emporium_kit.identity.revocations.revoked_by).
-- Returns {generation, then one answer per op}: for 'L' {{allowed (1/0),
-- entries in the window (after this request), oldest entry's time as a
-- string} per limit checked, the entry (false when absent or not read),
-- revoked (1/0)}; for 'S' 1. A refused limit ends its op's checks: the limits
-- before it keep their entry, the entry is not read.
local now = tonumber(ARGV[1])
local call = ARGV[2]
local entries = ARGV[3]
local generation = redis.call('GET', KEYS[1]) or '0'
local answers = {generation}
local k, a, n = 2, 4, 0
while a <= #ARGV do
  n = n + 1
  if ARGV[a] == 'S' then
    redis.call('SET', KEYS[k], ARGV[a + 2], 'EX', ARGV[a + 1])
    k, a = k + 1, a + 3
    answers[n + 1] = 1
  else
    local accepted = tonumber(ARGV[a + 1])
    local revoked_at = a + 2 + 2 * accepted
    local refused = tonumber(ARGV[revoked_at])
    local version = ARGV[revoked_at + 1 + 2 * refused]
    local suffix = ARGV[revoked_at + 2 + 2 * refused]
    local revoked = 0
    if version ~= '' then
      if redis.call('EXISTS', KEYS[k]) == 1 then
        revoked = 1
      else
        local minimum = redis.call('GET', KEYS[k + 1])
        -- A minimum that is not a number revokes: never an error for the whole turn.
        if minimum and (tonumber(minimum) == nil or tonumber(version) < tonumber(minimum)) then
          revoked = 1
        end
      end
      k = k + 2
    end
    -- The limits counted: the token's, or a revoked token's after them.
    local limits, first_key, windows_at = accepted, k, a + 2
    if revoked == 1 then
      limits, first_key, windows_at = refused, k + accepted, revoked_at + 1
    end
    k = k + accepted + refused
    a = revoked_at + 3 + 2 * refused
    local member = call .. n
    local checked = {}
    local allowed = 1
    for i = 1, limits do
      local key = KEYS[first_key + i - 1]
      local amount = tonumber(ARGV[windows_at + 2 * (i - 1)])
      local window = tonumber(ARGV[windows_at + 2 * (i - 1) + 1])
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
      local count = redis.call('ZCARD', key)
      allowed = 0
      if count < amount then
        redis.call('ZADD', key, now, member)
        count = count + 1
        allowed = 1
      end
      redis.call('EXPIRE', key, math.ceil(window))
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or ARGV[1]
      checked[i] = {allowed, count, oldest}
      if allowed == 0 then
        break
      end
    end
    local entry = false
    if allowed == 1 and suffix ~= '' then
      entry = redis.call('GET', entries .. generation .. suffix)
    end
    answers[n + 1] = {checked, entry, revoked}
  end
end
return answers
"""

Window = tuple[int, int]
"""A limit's amount and window in seconds."""


@dataclass(frozen=True, slots=True)
class RevocationRead:
    """A verified token to check for revocation in the op that limits its request:
    its revocation keys (:func:`emporium_kit.identity.revocations.revocation_keys`),
    its version, and the limits to count instead if it is revoked."""

    token_keys: tuple[str, str]
    token_version: int
    keys: Sequence[str]
    windows: Sequence[Window]


@dataclass(frozen=True, slots=True)
class Limits:
    """One request's limits (each key with its window, in order), and the cache
    entry it would be served (its key suffix), read only if every limit allows;
    with ``revocation``, its token is checked first (the limits are its user's)."""

    keys: Sequence[str]
    windows: Sequence[Window]
    entry_suffix: str | None = None
    revocation: RevocationRead | None = None


@dataclass(frozen=True, slots=True)
class Store:
    key: str
    value: bytes
    ttl_seconds: int


@dataclass(frozen=True, slots=True)
class Counted:
    """What a :class:`Limits` op found: each limit checked as (allowed, entries in
    the window, oldest entry's time), the cache generation, the entry (None
    when absent, or not read), and whether its token was found revoked (the
    limits checked are then the revoked token's)."""

    checked: list[tuple[bool, int, float]]
    generation: str
    entry: bytes | None
    revoked: bool = False


class RedisTurn:
    """One script call for the :class:`Limits` and :class:`Store` ops of one turn."""

    def __init__(self, redis: Redis, *, key_prefix: str, max_batch: int = 128) -> None:
        # redis-py's Script sends EVALSHA and loads the script on NOSCRIPT itself.
        self._script = redis.register_script(TURN_LUA)
        self.generation_key = f"{key_prefix}cache-generation"
        self.entry_prefix = f"{key_prefix}cache:"
        self._batcher: TickBatcher[Limits | Store, Counted | None] = TickBatcher(
            self._call, max_batch=max_batch
        )

    async def count(self, op: Limits) -> Counted:
        return cast(Counted, await self._batcher(op))

    async def store(self, op: Store) -> None:
        await self._batcher(op)

    async def _call(self, ops: list[Limits | Store]) -> list[Counted | None]:
        keys: list[str] = [self.generation_key]
        args: list[Any] = [repr(time.time()), f"{uuid.uuid4().hex}:", self.entry_prefix]
        for op in ops:
            if isinstance(op, Store):
                keys.append(op.key)
                args += ("S", op.ttl_seconds, op.value)
                continue
            revocation = op.revocation
            if revocation is not None:
                keys += revocation.token_keys
            keys += op.keys
            args += ("L", len(op.windows))
            for amount, seconds in op.windows:
                args += (amount, seconds)
            if revocation is None:
                args += (0, "")
            else:
                keys += revocation.keys
                args.append(len(revocation.windows))
                for amount, seconds in revocation.windows:
                    args += (amount, seconds)
                args.append(revocation.token_version)
            args.append(op.entry_suffix or "")
        generation, *answers = await self._script(keys=keys, args=args)
        text = generation.decode() if isinstance(generation, bytes) else str(generation)
        results: list[Counted | None] = []
        for op, answer in zip(ops, answers, strict=True):
            if isinstance(op, Store):
                results.append(None)
                continue
            checked, entry, revoked = answer
            results.append(
                Counted(
                    checked=[
                        (bool(allowed), int(count), float(oldest))
                        for allowed, count, oldest in checked
                    ],
                    generation=text,
                    entry=entry or None,
                    revoked=bool(revoked),
                )
            )
        return results
