"""The response cache's Redis calls: one per turn of the event loop for all its lookups,
one pipeline for all its stores, each caller still getting its own answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.cache import CachedResponse, ResponseCache
from gateway.redis_guard import RedisGuard


@pytest.fixture
async def cache(redis: Redis) -> AsyncIterator[ResponseCache]:
    prefix = f"test-batches-{uuid.uuid4().hex}:"
    yield ResponseCache(
        redis,
        RedisGuard(retry_seconds=1.0),
        key_prefix=prefix,
        ttl_seconds=30,
        max_body_bytes=65536,
        local_entries=0,  # every lookup asks Redis
    )
    keys = [key async for key in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)


def _page(n: int) -> CachedResponse:
    body = f'{{"page": {n}}}'.encode()
    return CachedResponse(
        status=200, headers=[(b"content-type", b"application/json")], body=body, etag=f'"{n}"'
    )


class _Counted:
    """Wraps an awaitable callable and counts its calls."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return await self.wrapped(*args, **kwargs)


async def test_the_lookups_and_stores_of_one_turn_are_one_redis_call_each(
    cache: ResponseCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = _Counted(cache._lookup)  # the one Redis call of a lookup batch
    monkeypatch.setattr(cache, "_lookup", lookups)
    suffixes = [f":GET /api/v1/products?page={n}" for n in range(12)]

    missed = await asyncio.gather(*(cache.lookup(suffix) for suffix in suffixes))
    assert lookups.calls == 1
    assert all(found.entry is None and found.generation == "0" for found in missed)

    executed = 0
    pipeline = cache._redis.pipeline

    def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
        nonlocal executed
        executed += 1
        return pipeline(*args, **kwargs)

    monkeypatch.setattr(cache._redis, "pipeline", counted_pipeline)
    stored = range(0, 12, 2)  # every other page
    await asyncio.gather(*(cache.store(missed[n], suffixes[n], _page(n)) for n in stored))
    assert executed == 1

    found = await asyncio.gather(*(cache.lookup(suffix) for suffix in suffixes))
    assert lookups.calls == 2
    for n, lookup in enumerate(found):
        assert lookup.generation == "0"
        assert lookup.entry == (_page(n) if n in stored else None)


async def test_a_lookup_batch_reads_every_entry_under_the_generation_it_read(
    cache: ResponseCache, redis: Redis
) -> None:
    first = await cache.lookup(":GET /a?")
    await cache.store(first, ":GET /a?", _page(1))
    await cache.invalidate()  # a catalogue event: generation 1

    again, other = await asyncio.gather(cache.lookup(":GET /a?"), cache.lookup(":GET /b?"))

    assert again.generation == other.generation == "1"
    assert again.entry is None  # stored under generation 0, never served again
    assert other.entry is None
