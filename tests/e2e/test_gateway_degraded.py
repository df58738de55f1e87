"""Edge promises that need a gateway of their own: tight limits, Redis down, oversized bodies."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emporium_testkit.processes import free_port

from .conftest import extra_gateway


@pytest.fixture(scope="module")
def strict_gateway(system: Any) -> Iterator[str]:
    yield from extra_gateway(
        system,
        RATE_LIMIT_AUTH="3/minute",
        RATE_LIMIT_ANONYMOUS="1000/minute",
        # Counters of earlier runs may still be in the window: a prefix per run.
        GATEWAY_REDIS_KEY_PREFIX=f"e2e:strict:{uuid.uuid4().hex}:",
    )


@pytest.fixture(scope="module")
def gateway_without_redis(system: Any) -> Iterator[str]:
    yield from extra_gateway(system, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")


async def test_flooding_the_auth_routes_gets_429_with_retry_after(strict_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=strict_gateway) as api:
        body = {"email": f"flood-{uuid.uuid4().hex[:8]}@example.com", "password": "whatever-1"}
        answers = [await api.post("/api/v1/auth/login", json=body) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [401, 401, 401]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[2].headers["ratelimit-remaining"] == "0"
    limited = answers[3]
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(limited.headers)


async def test_without_redis_the_gateway_keeps_serving_and_says_redis_is_down(
    gateway_without_redis: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway_without_redis, timeout=10) as api:
        ready = await api.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] != "ok"
        assert ready.json()["checks"]["users"] == "ok"
        registered = await api.post(
            "/api/v1/auth/register",
            json={"email": "noredis@example.com", "password": "no-redis-1", "full_name": "N"},
        )
        assert registered.status_code in (201, 409)
        login = await api.post(
            "/api/v1/auth/login",
            json={"email": "noredis@example.com", "password": "no-redis-1"},
        )
        assert login.status_code == 200
        token = login.json()["access_token"]
        me = await api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        # The in-process fallback limiter still reports its budget.
        assert "ratelimit-limit" in me.headers


def _raw_exchange(base: str, request: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


async def test_an_oversized_body_is_refused_with_413_before_it_is_read(system: Any) -> None:
    request = (
        b"POST /api/v1/auth/register HTTP/1.1\r\nHost: e2e\r\n"
        b"Content-Type: application/json\r\nContent-Length: 5000000\r\n"
        b"Connection: close\r\n\r\n{"
    )
    reply = await asyncio.to_thread(_raw_exchange, system.gateway, request)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in head.lower()
    assert b'"status":413' in body


async def _send_without_finishing(base: str, head: bytes, chunks: list[bytes]) -> bytes:
    """Sends ``head`` and ``chunks`` but never the end of the body, then reads the answer.

    The server must answer without waiting for the rest. The last chunk goes
    on past the limit; the server's lingering close (ADR 0020) reads and drops
    those bytes instead of answering them with a TCP reset, which would
    discard the answer before the client has read it.
    """
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    reply = b""
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        while data := await asyncio.wait_for(reader.read(65536), timeout=10):
            reply += data
    finally:
        writer.close()
    return reply


@pytest.mark.parametrize(
    ("method", "chunks", "chunked_status"),
    # DELETE is not allowed on the open route: 405 comes before any body is read,
    # so no body is sent (it would stay unread).
    [(b"GET", 17, b"413"), (b"DELETE", 0, b"405")],
)
async def test_a_body_on_any_method_is_bounded_before_it_is_read(
    system: Any, method: bytes, chunks: int, chunked_status: bytes
) -> None:
    # An open route: the gateway reads (and forwards) a GET body it is sent there.
    start = method + b" /.well-known/jwks.json HTTP/1.1\r\nHost: e2e\r\n"
    start += b"Content-Type: application/json\r\nConnection: close\r\n"
    # 16 MiB declared and none sent: refused on the declaration alone.
    declared = await _send_without_finishing(
        system.gateway, start + b"Content-Length: 16777216\r\n\r\n", []
    )
    # A chunked body that never ends: 17 chunks of 64 KiB pass 1 MiB with the last.
    chunked = await _send_without_finishing(
        system.gateway,
        start + b"Transfer-Encoding: chunked\r\n\r\n",
        [b"10000\r\n" + b" " * 65536 + b"\r\n"] * chunks,
    )

    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    assert b'"status":413' in declared
    assert chunked.startswith(b"HTTP/1.1 " + chunked_status), chunked[:200]
    assert b"application/problem+json" in chunked
