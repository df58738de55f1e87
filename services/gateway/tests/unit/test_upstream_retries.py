"""Upstream.send retries a request whose connection broke under it only when that is safe.

aiohttp itself sends an idempotent request again at once, one time, when its
connection drops before an answer (RFC 9112 section 9.3.1.1); the gateway's own
attempts (GATEWAY_UPSTREAM_RETRY_ATTEMPTS, tenacity, with backoff) each include
that: a GET may thus reach a flaky service on up to twice as many connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.proxy import Upstream, UpstreamFailure, UpstreamTimeouts, circuit_breakers

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class FlakyService:
    """A real HTTP/1.1 server on a socket that drops the first ``drops`` connections
    once their request has arrived (as a service restarting under a kept-alive
    connection does), then answers."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if self.connections <= self.drops:
            writer.close()
            return
        writer.write(ANSWER)
        await writer.drain()
        writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"


@pytest.fixture
async def service(request: pytest.FixtureRequest) -> AsyncIterator[FlakyService]:
    flaky = FlakyService(drops=request.param)
    flaky.server = await asyncio.start_server(flaky._serve, "127.0.0.1", 0)
    yield flaky
    flaky.server.close()
    await flaky.server.wait_closed()


def upstream(url: str, *, attempts: int = 3) -> Upstream:
    return Upstream(
        "users",
        url,
        timeouts=UpstreamTimeouts(connect=1, read=2, write=2, pool=1),
        max_connections=4,
        max_keepalive=4,
        breakers=circuit_breakers(threshold=100, reset_seconds=30),
        retry_attempts=attempts,
        retry_backoff_seconds=0.05,
        breaker_reset_seconds=30,
    )


@pytest.mark.parametrize("service", [2], indirect=True)
async def test_a_get_whose_connection_broke_is_retried_with_backoff(service: FlakyService) -> None:
    proxy = upstream(service.url)
    started = time.perf_counter()
    try:
        response = await proxy.send("GET", "/x", [], None)
        assert response.status_code == 200
        assert await response.aread() == b"{}"
        await response.aclose()
    finally:
        await proxy.aclose()

    # The first attempt: two connections dropped (aiohttp's own repeat); the second,
    # after the gateway's backoff (0.05 s at least), answered.
    assert service.connections == 3
    assert time.perf_counter() - started >= 0.05


@pytest.mark.parametrize("service", [1_000], indirect=True)
async def test_a_get_fails_once_its_attempts_are_spent(service: FlakyService) -> None:
    proxy = upstream(service.url)
    started = time.perf_counter()
    try:
        with pytest.raises(UpstreamFailure) as failed:
            await proxy.send("GET", "/x", [], None)
    finally:
        await proxy.aclose()

    assert failed.value.status == 503
    assert service.connections == 6  # 3 attempts of 2 connections each
    # The waits before the second and third attempts: 0.05 s and 0.1 s at least.
    assert time.perf_counter() - started >= 0.15


@pytest.mark.parametrize("service", [1], indirect=True)
async def test_a_post_the_service_may_have_seen_is_never_repeated(
    service: FlakyService,
) -> None:
    proxy = upstream(service.url)
    try:
        with pytest.raises(UpstreamFailure):
            await proxy.send("POST", "/x", [(b"content-type", b"application/json")], b"{}")
    finally:
        await proxy.aclose()

    assert service.connections == 1


async def test_a_post_whose_connection_could_not_be_opened_is_retried() -> None:
    # Nothing listens on a port we bound and closed: the connection is refused,
    # the service never saw the request, so even a POST may be tried again.
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    proxy = upstream(f"http://127.0.0.1:{port}")
    started = time.perf_counter()
    try:
        with pytest.raises(UpstreamFailure) as failed:
            await proxy.send("POST", "/x", [], b"{}")
    finally:
        await proxy.aclose()

    assert failed.value.status == 503
    assert time.perf_counter() - started >= 0.15  # three attempts, two waits
