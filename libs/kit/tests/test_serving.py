"""The bounded httptools protocol: a request head over the limit is 431, never buffered whole."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest
from starlette.types import Receive, Scope, Send

from emporium_kit import serving
from emporium_kit.serving import BOUNDED_HTTPTOOLS
from emporium_testkit.processes import free_port, serve_in_process

LIMIT = 16_384


class CountingApp:
    """Answers 200 with how many header lines it saw; counts the requests it ran."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        body = orjson.dumps({"headers": len(scope["headers"])})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def app() -> CountingApp:
    return CountingApp()


@pytest.fixture
async def port(app: CountingApp) -> AsyncIterator[int]:
    port = free_port()
    async with serve_in_process(
        app,
        port,
        http=BOUNDED_HTTPTOOLS,
        h11_max_incomplete_event_size=LIMIT,
        lifespan="off",
    ):
        yield port


def parse(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers, body


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()


async def test_many_header_lines_over_the_limit_are_431_problems(
    port: int, app: CountingApp
) -> None:
    lines = b"".join(f"X-Filler-{n}: {'v' * 100}\r\n".encode() for n in range(200))
    reply = await exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n" + lines + b"\r\n")

    status, headers, body = parse(reply)
    assert status == 431
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert headers["x-content-type-options"] == "nosniff"
    problem = orjson.loads(body)
    assert problem["status"] == 431
    assert problem["type"].endswith("/headers-too-large")
    assert problem["request_id"] == headers["x-request-id"]
    assert app.calls == 0


async def test_a_header_that_never_ends_is_refused_before_it_is_read_whole(
    port: int, app: CountingApp
) -> None:
    """The client keeps sending one header value; the server answers 431 mid-stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: ")
        sent = 0
        reply = b""
        # Without a bound the server would wait for the line's end forever.
        while sent < 4 * 1024 * 1024:
            try:
                writer.write(b"a" * 8192)
                await writer.drain()
            except ConnectionError:
                break
            sent += 8192
            with contextlib.suppress(TimeoutError):
                reply = await asyncio.wait_for(reader.read(65536), timeout=0.01)
            if reply:
                break
        if not reply:
            reply = await asyncio.wait_for(reader.read(65536), timeout=5)
    finally:
        writer.close()

    assert parse(reply)[0] == 431
    assert sent < 256 * 1024
    assert app.calls == 0


async def test_a_head_within_the_limit_is_served_and_the_connection_kept(
    port: int, app: CountingApp
) -> None:
    lines = b"".join(f"X-Filler-{n}: {'v' * 100}\r\n".encode() for n in range(100))
    request = b"GET / HTTP/1.1\r\nHost: t\r\n" + lines + b"\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        # Two requests on one keep-alive connection: the count starts again for each.
        for _ in range(2):
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            status, headers, _ = parse(head)
            assert status == 200
            await reader.readexactly(int(headers["content-length"]))
    finally:
        writer.close()
    assert app.calls == 2


async def refuse_unread(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 413 at once, as the body guard does, without reading the body."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-length", b"2"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


async def send_all_then_read(port: int, head: bytes, body: bytes) -> bytes:
    """Sends all of ``body`` whatever the server answered meanwhile, then reads to the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for start in range(0, len(body), 65536):
            writer.write(body[start : start + 65536])
            await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()


async def test_an_answer_given_before_the_body_is_read_reaches_the_client() -> None:
    """A reset would destroy the 413 unread: the server half-closes and drops the rest first."""
    port = free_port()
    async with serve_in_process(refuse_unread, port, http=BOUNDED_HTTPTOOLS, lifespan="off"):
        reply = await send_all_then_read(
            port,
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4194304\r\n\r\n",
            b"x" * 4 * 1024 * 1024,
        )
    assert parse(reply)[:1] == (413,)
    assert reply.endswith(b"\r\n\r\n{}")


async def test_a_431_reaches_a_client_that_is_still_sending_its_head(port: int) -> None:
    reply = await send_all_then_read(
        port, b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: ", b"a" * 1024 * 1024
    )
    assert parse(reply)[0] == 431


async def test_a_lingering_connection_is_closed_when_its_time_is_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that neither finishes its body nor closes is not waited on for long."""
    monkeypatch.setattr(serving, "LINGER_SECONDS", 0.5)
    port = free_port()
    async with serve_in_process(
        refuse_unread, port, http=BOUNDED_HTTPTOOLS, lifespan="off"
    ) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nx")
            await writer.drain()
            # The answer ends with the server's half-close, long before the linger does.
            reply = await asyncio.wait_for(reader.read(), timeout=5)
            assert parse(reply)[0] == 413
            assert server.server_state.connections
            for _ in range(250):
                if not server.server_state.connections:
                    break
                await asyncio.sleep(0.02)
            assert not server.server_state.connections
        finally:
            writer.close()
