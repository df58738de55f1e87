"""What one event-loop turn writes to a connection leaves in one write of its transport."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import uvicorn

from emporium_kit.serving import BOUNDED_HTTPTOOLS, CoalescingTransport
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
