"""What one event-loop turn writes to a connection leaves in one write of its transport."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import uvicorn

from emporium_kit.serving import BOUNDED_HTTPTOOLS, HOLD_AT_MOST_BYTES, CoalescingTransport
from emporium_testkit.processes import free_port


class RecordingTransport(asyncio.Transport):
    """Stands for the event loop's socket transport: keeps what it is asked to write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


async def test_the_writes_of_one_turn_leave_in_one_write() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())

    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert inner.writes == []
    assert transport.get_write_buffer_size() == 40
    await asyncio.sleep(0)

    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"next"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 5)


async def test_past_its_limit_a_turn_s_writes_go_straight_through() -> None:
    """So the wrapped transport's flow control pauses the protocol within the turn."""
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"head")
    transport.write(b"x" * (HOLD_AT_MOST_BYTES - 5))
    assert inner.writes == []  # still under the limit: held for the end of the turn
    transport.write(b"yz")
    assert inner.writes == [b"head" + b"x" * (HOLD_AT_MOST_BYTES - 5) + b"yz"]
    assert transport.get_write_buffer_size() == 0
    transport.write(b"tail")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"tail"]


async def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"]
    assert inner.closed

    other = RecordingTransport()
    aborted = CoalescingTransport(other, asyncio.get_running_loop())
    aborted.write(b"never")
    aborted.abort()
    await asyncio.sleep(0)
    assert other.writes == []
    assert other.aborted


async def test_a_server_on_the_kit_protocol_answers_whole_and_streams() -> None:
    """Through a real uvicorn: a small answer, a streamed one and keep-alive all hold."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"a", b"b", b"c"):
                await asyncio.sleep(0.01)
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"5")],
            }
        )
        await send({"type": "http.response.body", "body": b"hello"})

    unused_port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=unused_port, http=BOUNDED_HTTPTOOLS, log_config=None
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{unused_port}") as client:
            answers = [await client.get("/") for _ in range(3)]
            streamed = await client.get("/stream")
        assert [a.content for a in answers] == [b"hello"] * 3
        assert streamed.content == b"abc"
        assert streamed.headers["transfer-encoding"] == "chunked"
    finally:
        server.should_exit = True
        await serving


async def test_a_client_that_stops_reading_stops_a_streaming_answer() -> None:
    """Back-pressure reaches the app through the coalescing transport: while the client
    reads nothing, the app's ``send`` waits instead of piling the answer up in memory,
    and once the client reads again the whole answer arrives."""
    chunk, chunks = b"x" * (1024 * 1024), 64  # 64 MiB, far beyond any socket buffer
    sent = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal sent
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += 1
        await send({"type": "http.response.body", "body": b""})

    unused_port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=unused_port,
        http=BOUNDED_HTTPTOOLS,
        log_config=None,
        timeout_graceful_shutdown=1,  # a failed check leaves an answer unread
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    writer: asyncio.StreamWriter | None = None
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", unused_port)
        writer.write(b"GET /big HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)  # the client reads nothing meanwhile
        stalled_at = sent
        await asyncio.sleep(0.2)
        assert sent == stalled_at  # waiting on the client, not writing on
        assert stalled_at < 16  # socket buffers and the transport's limit, not the answer
        received = 0
        while block := await reader.read(1024 * 1024):
            received += len(block)
        assert sent == chunks
        assert received > chunks * len(chunk)  # the chunked body and its framing
    finally:
        if writer is not None:
            writer.close()
        server.should_exit = True
        await serving
