"""Anonymous catalogue reads are cached in Redis and invalidated by catalogue events."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import httpx
from gateway_testkit import AMQP_URL, Gateway, GatewayFactory, TestUpstream, Tokens, free_port
from redis.asyncio import Redis

from gateway.composition import GATEWAY


async def test_anonymous_catalogue_get_is_a_miss_then_a_hit(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    first = await gateway.client.get("/api/v1/products?limit=5&category=shoes")
    second = await gateway.client.get("/api/v1/products?category=shoes&limit=5")

    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=30"
    assert second.headers["cache-control"] == "public, max-age=30"
    assert second.headers["content-type"] == "application/json"
    assert "ratelimit-remaining" in second.headers
    assert len(upstream.received) == 1
    assert upstream.received[0].header("accept-encoding") == "identity"


async def test_a_head_of_a_cached_page_is_its_headers_from_the_cache(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    missed = await gateway.client.head("/api/v1/products?limit=3")
    got = await gateway.client.get("/api/v1/products?limit=3")
    hit = await gateway.client.head("/api/v1/products?limit=3")

    assert missed.status_code == hit.status_code == 200
    assert missed.content == hit.content == b""
    assert missed.headers["x-cache"] == "MISS"
    assert got.headers["x-cache"] == hit.headers["x-cache"] == "HIT"
    assert hit.headers["etag"] == got.headers["etag"]
    assert hit.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
    assert len(upstream.received) == 1
    assert upstream.received[0].method == "GET"


async def test_different_queries_are_cached_separately(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    await gateway.client.get("/api/v1/products?limit=5")
    other = await gateway.client.get("/api/v1/products?limit=6")

    assert other.headers["x-cache"] == "MISS"
    assert len(upstream.received) == 2


async def test_if_none_match_gives_304(gateway: Gateway) -> None:
    first = await gateway.client.get("/api/v1/categories")
    etag = first.headers["etag"]

    revalidated = await gateway.client.get("/api/v1/categories", headers={"If-None-Match": etag})
    other = await gateway.client.get(
        "/api/v1/categories", headers={"If-None-Match": '"something-else"'}
    )

    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert revalidated.headers["etag"] == etag
    assert revalidated.headers["ratelimit-limit"] == first.headers["ratelimit-limit"]
    assert other.status_code == 200


async def test_authenticated_gets_are_never_cached(
    gateway: Gateway, upstream: TestUpstream, tokens: Tokens
) -> None:
    headers = tokens.bearer()
    first = await gateway.client.get("/api/v1/products/42", headers=headers)
    second = await gateway.client.get("/api/v1/products/42", headers=headers)
    anonymous = await gateway.client.get("/api/v1/products/42")

    assert "x-cache" not in first.headers
    assert "x-cache" not in second.headers
    assert anonymous.headers["x-cache"] == "MISS"
    assert len(upstream.received) == 3
    assert upstream.received[0].header("authorization") == headers["Authorization"]


async def test_error_responses_are_not_cached(gateway: Gateway, upstream: TestUpstream) -> None:
    upstream.respond_status = 404
    first = await gateway.client.get("/api/v1/products/7")
    upstream.respond_status = None
    second = await gateway.client.get("/api/v1/products/7")

    assert (first.status_code, second.status_code) == (404, 200)
    assert second.headers["x-cache"] == "MISS"


async def test_a_client_header_never_reaches_the_upstream_of_a_cacheable_page(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    poisoned = await gateway.client.get(
        "/api/v1/products/9",
        headers={
            "Accept-Language": "xx-POISON",
            "X-Forwarded-Host": "evil.example",
            "Cookie": "session=attacker",
            "Accept": "text/html",
            "X-Test-Status": "500",
        },
    )
    clean = await gateway.client.get("/api/v1/products/9")

    assert poisoned.status_code == 200
    assert clean.headers["x-cache"] == "HIT"
    sent = {name.lower() for name, _ in upstream.received[0].headers}
    assert sent.isdisjoint({"accept-language", "x-forwarded-host", "cookie", "x-test-status"})
    assert upstream.received[0].header("accept") == "application/json"


async def test_a_response_that_varies_on_a_header_is_relayed_but_never_stored(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    upstream.respond_headers["Vary"] = "Accept-Language"
    first = await gateway.client.get("/api/v1/products/10")
    second = await gateway.client.get("/api/v1/products/10")
    upstream.respond_headers["Vary"] = "Accept-Encoding"
    third = await gateway.client.get("/api/v1/products/11")
    fourth = await gateway.client.get("/api/v1/products/11")

    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "MISS")
    assert first.headers["vary"] == "Accept-Language"
    assert (third.headers["x-cache"], fourth.headers["x-cache"]) == ("MISS", "HIT")
    assert len(upstream.received) == 3


async def test_a_hot_page_is_served_from_process_memory_without_redis(
    gateway: Gateway, upstream: TestUpstream, redis: Redis
) -> None:
    await gateway.client.get("/api/v1/products/12")
    # Both Redis entries go: only the process's own tier can answer now.
    prefix = gateway.settings.redis_key_prefix
    async for key in redis.scan_iter(match=f"{prefix}cache:*"):
        await redis.delete(key)
    again = await gateway.client.get("/api/v1/products/12")

    assert again.headers["x-cache"] == "HIT"
    assert len(upstream.received) == 1


async def test_an_invalidation_empties_the_process_tier_and_outruns_a_fetch_in_flight(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    cache = GATEWAY.get(gateway.app).cache
    await gateway.client.get("/api/v1/products/13")
    await cache.invalidate()
    assert (await gateway.client.get("/api/v1/products/13")).headers["x-cache"] == "MISS"

    # A page fetched while an invalidation happens must not outlive it.
    upstream.hold = asyncio.Event()
    slow = asyncio.create_task(gateway.client.get("/api/v1/products/14"))
    await asyncio.wait_for(upstream.held.wait(), 5)
    await cache.invalidate()
    upstream.hold.set()
    await slow
    upstream.hold = None
    after = await gateway.client.get("/api/v1/products/14")

    assert after.headers["x-cache"] == "MISS"


async def test_cache_expires_after_its_ttl(make_gateway: GatewayFactory) -> None:
    async with make_gateway(cache_ttl_seconds=1) as gw:
        await gw.client.get("/api/v1/categories")
        await asyncio.sleep(1.1)
        later = await gw.client.get("/api/v1/categories")

    assert later.headers["x-cache"] == "MISS"


async def test_catalogue_event_on_rabbitmq_invalidates_the_cache(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    listener = GATEWAY.get(gateway.app).listener
    await asyncio.wait_for(listener.ready.wait(), 5)
    await gateway.client.get("/api/v1/products/9")
    assert (await gateway.client.get("/api/v1/products/9")).headers["x-cache"] == "HIT"

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            "emporium.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        await exchange.publish(
            aio_pika.Message(b'{"product_id": "9"}', content_type="application/json"),
            routing_key="catalog.product_updated.v1",
        )

    deadline = time.monotonic() + 3
    outcome = "HIT"
    while outcome == "HIT" and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        outcome = (await gateway.client.get("/api/v1/products/9")).headers["x-cache"]

    assert outcome == "MISS"
    assert (await gateway.client.get("/api/v1/products/9")).headers["x-cache"] == "HIT"


async def test_without_redis_the_catalogue_is_served_uncached(
    make_gateway: GatewayFactory, upstream: TestUpstream
) -> None:
    async with make_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0") as gw:
        answers = [await gw.client.get("/api/v1/products") for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 200]
    assert [a.headers["x-cache"] for a in answers] == ["MISS", "MISS"]
    assert len(upstream.received) == 2


async def test_an_anonymous_read_makes_one_redis_round_trip(
    make_gateway: GatewayFactory, upstream: TestUpstream
) -> None:
    """Its limits and its page in one call (ADR 0024), whichever tier holds the page;
    a miss's store rides in a call of its own only when no other request shares it."""
    trips: list[tuple[object, ...]] = []

    async def count(gw: Gateway, path: str) -> tuple[str, int]:
        before = len(trips)
        response = await gw.client.get(path)
        await asyncio.sleep(0.05)  # a store after the answer has gone out
        return response.headers["x-cache"], len(trips) - before

    for local_entries in (0, 1024):
        async with make_gateway(cache_local_entries=local_entries) as gw:
            redis = GATEWAY.get(gw.app).redis
            execute = redis.execute_command

            async def counted(*args: object, _execute: object = execute, **kw: object) -> object:
                trips.append(args)
                return await _execute(*args, **kw)  # type: ignore[operator]

            redis.execute_command = counted  # type: ignore[method-assign]
            path = f"/api/v1/products/{local_entries}-round-trips"
            missed = await count(gw, path)
            hit = await count(gw, path)

        assert missed == ("MISS", 2)  # limits and lookup; then the store
        assert hit == ("HIT", 1)  # limits and lookup (from Redis, or the process tier)
    assert all(args[0] == "EVALSHA" for args in trips)


async def _misses_held_at_the_upstream(
    gateway: Gateway, upstream: TestUpstream, path: str, followers: int
) -> tuple[asyncio.Task[httpx.Response], list[asyncio.Task[httpx.Response]]]:
    """A first miss of ``path`` held at the upstream, then ``followers`` more for it;
    the upstream answers once the test sets ``upstream.hold``."""
    upstream.hold = asyncio.Event()
    first = asyncio.create_task(gateway.client.get(path))
    await asyncio.wait_for(upstream.held.wait(), 5)
    others = [asyncio.create_task(gateway.client.get(path)) for _ in range(followers)]
    await asyncio.sleep(0.2)  # every one of them has looked up and found the fetch
    return first, others


async def test_twenty_misses_of_one_page_at_once_ask_the_upstream_once(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    """The first miss fetches; the others wait for its page and get it as hits."""
    path = "/api/v1/products/stampede"
    first, others = await _misses_held_at_the_upstream(gateway, upstream, path, 19)
    upstream.hold.set()
    answers = [await first, *await asyncio.gather(*others)]
    upstream.hold = None

    assert [a.status_code for a in answers] == [200] * 20
    assert upstream.paths().count(path) == 1
    assert [a.headers["x-cache"] for a in answers] == ["MISS"] + ["HIT"] * 19
    assert {a.content for a in answers} == {answers[0].content}
    assert {a.headers["etag"] for a in answers} == {answers[0].headers["etag"]}
    assert all("ratelimit-remaining" in a.headers for a in answers)


async def test_misses_waiting_on_an_answer_not_to_store_ask_the_upstream_themselves(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    """An error is never shared: each waiting request gets an answer of its own."""
    path = "/api/v1/products/stampede-of-errors"
    upstream.respond_status = 503
    first, others = await _misses_held_at_the_upstream(gateway, upstream, path, 4)
    upstream.hold.set()
    answers = [await first, *await asyncio.gather(*others)]
    upstream.hold = None
    upstream.respond_status = None

    assert [a.status_code for a in answers] == [503] * 5
    assert upstream.paths().count(path) == 5


async def test_misses_waiting_on_a_first_request_whose_client_left_are_still_answered(
    gateway: Gateway, upstream: TestUpstream
) -> None:
    path = "/api/v1/products/stampede-abandoned"
    first, others = await _misses_held_at_the_upstream(gateway, upstream, path, 3)
    first.cancel()  # its client gives up while the upstream holds the page
    await asyncio.sleep(0.05)
    upstream.hold.set()
    answers = await asyncio.wait_for(asyncio.gather(*others), 10)
    upstream.hold = None

    assert [a.status_code for a in answers] == [200] * 3
    assert first.cancelled()
