"""The gateway's Redis work of one event-loop turn is one call of its turn script
(ADR 0024): the rate limits of the turn's requests, the cache entries of the
anonymous reads among them and the pages stored after misses, each caller still
getting its own answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from limits import parse
from redis.asyncio import Redis

from gateway.cache import CachedResponse, Lookup, PendingLookup, ResponseCache
from gateway.ratelimit import RedisMovingWindow
from gateway.redis_guard import RedisGuard
from gateway.redis_turn import RedisTurn


@dataclass
class Parts:
    turn: RedisTurn
    cache: ResponseCache
    window: RedisMovingWindow
    calls: int = 0


@pytest.fixture
async def parts(redis: Redis) -> AsyncIterator[Parts]:
    prefix = f"test-batches-{uuid.uuid4().hex}:"
    turn = RedisTurn(redis, key_prefix=prefix)
    cache = ResponseCache(
        redis,
        turn,
        RedisGuard(retry_seconds=1.0),
        ttl_seconds=30,
        max_body_bytes=65536,
        local_entries=0,  # every lookup asks Redis
    )
    made = Parts(turn, cache, RedisMovingWindow(turn, key_prefix=prefix))
    script = turn._script

    async def counted(**kwargs: Any) -> Any:
        made.calls += 1
        return await script(**kwargs)

    turn._script = counted  # type: ignore[assignment]
    yield made
    keys = [key async for key in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)


def _page(n: int) -> CachedResponse:
    body = f'{{"page": {n}}}'.encode()
    return CachedResponse(
        status=200, headers=[(b"content-type", b"application/json")], body=body, etag=f'"{n}"'
    )


async def _lookup(parts: Parts, suffix: str) -> Lookup:
    """A lookup as the dispatcher makes one: started, read in a ``Limits`` op (here
    without limits), finished."""
    started = parts.cache.start(suffix)
    if isinstance(started, Lookup):
        return started
    _, counted = await parts.window.hit([], entry_suffix=suffix)
    return parts.cache.finish(started, counted)


def _pending(cache: ResponseCache, suffix: str) -> PendingLookup:
    started = cache.start(suffix)
    assert isinstance(started, PendingLookup)
    return started


async def test_limits_lookups_and_stores_of_one_turn_are_one_redis_call(parts: Parts) -> None:
    cache, window = parts.cache, parts.window
    suffixes = [f":GET /api/v1/products?page={n}" for n in range(12)]
    roomy = parse("100/minute")

    missed = await asyncio.gather(*(_lookup(parts, suffix) for suffix in suffixes))
    assert parts.calls == 1
    assert all(found.entry is None and found.generation == "0" for found in missed)

    stored = range(0, 12, 2)  # every other page
    # The stores of one turn share its call with the limits and lookups made in it.
    pending = [_pending(cache, suffix) for suffix in suffixes]
    stores = [asyncio.ensure_future(cache.store(missed[n], _page(n))) for n in stored]
    answers = await asyncio.gather(
        *(window.hit([("anonymous", roomy, f"ip-{n}")], entry_suffix=p.suffix)
          for n, p in enumerate(pending)),
    )  # fmt: skip
    await asyncio.gather(*stores)
    assert parts.calls == 2
    # Stored in the same call, before the lookups submitted after them: already found.
    for n, (decided, counted) in enumerate(answers):
        assert decided[0][0] is True
        found = cache.finish(pending[n], counted)
        assert found.generation == "0"
        assert found.entry == (_page(n) if n in stored else None)


async def test_a_refused_request_does_not_read_its_entry(parts: Parts) -> None:
    cache, window = parts.cache, parts.window
    first = await _lookup(parts, ":GET /a?")
    await cache.store(first, _page(1))
    one = parse("1/minute")

    (allowed, counted), (refused, nothing) = await asyncio.gather(
        window.hit([("anonymous", one, "ip")], entry_suffix=":GET /a?"),
        window.hit([("anonymous", one, "ip")], entry_suffix=":GET /a?"),
    )

    assert parts.calls == 3
    assert [a for a, _ in allowed] == [True]
    assert counted.entry is not None
    assert [a for a, _ in refused] == [False]
    assert nothing.entry is None


async def test_a_batch_reads_every_entry_under_the_generation_it_read(parts: Parts) -> None:
    cache = parts.cache
    first = await _lookup(parts, ":GET /a?")
    await cache.store(first, _page(1))
    await cache.invalidate()  # a catalogue event: generation 1

    again, other = await asyncio.gather(_lookup(parts, ":GET /a?"), _lookup(parts, ":GET /b?"))

    assert again.generation == other.generation == "1"
    assert again.entry is None  # stored under generation 0, never served again
    assert other.entry is None


async def test_without_redis_a_lookup_is_a_miss_that_stores_nothing(parts: Parts) -> None:
    cache = parts.cache
    found = cache.finish(_pending(cache, ":GET /a?"), None)  # limits counted in process

    assert found == Lookup(":GET /a?", None, None)
    await cache.store(found, _page(1))
    assert parts.calls == 0


async def test_a_value_that_is_not_an_entry_is_a_miss(parts: Parts, redis: Redis) -> None:
    for n, garbage in enumerate((b"not json\nbody", b'{"s": 200}\n', b"[1, 2]\n", b"\xff")):
        await redis.set(f"{parts.turn.entry_prefix}0:GET /x?{n}", garbage)
        found = await _lookup(parts, f":GET /x?{n}")
        assert found.generation == "0"
        assert found.entry is None
