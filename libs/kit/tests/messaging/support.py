"""Helpers for the messaging tests: polling, draining a queue, and a TCP proxy in front
of RabbitMQ that can play an outage without touching the real broker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractQueue

POSTGRES_URL = os.environ.get(
    "EMPORIUM_TEST_POSTGRES_URL",
    "postgresql+asyncpg://postgres@127.0.0.1:5432/emporium_kit_messaging_test",
)
AMQP_URL = os.environ.get("EMPORIUM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass(frozen=True)
class MessagingTables:
    outbox: sa.Table
    inbox: sa.Table


async def drain(queue: AbstractQueue) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message now in ``queue`` (acked). Publisher confirms have already put
    them there, so an empty ``get`` really means there is nothing more."""
    messages = []
    while (message := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
        messages.append(message)
    return messages


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = 10.0,
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` until it holds; fail the test after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        outcome: Any = condition()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(interval)


class BrokerProxy:
    """A TCP proxy to RabbitMQ. ``go_down()`` drops every tunnel and closes each new
    connection at once, as an unreachable broker would; ``come_up()`` restores it."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._tunnels: set[asyncio.Task[Any]] = set()
        self.port = 0
        self.refused = 0

    @property
    def amqp_url(self) -> str:
        """``AMQP_URL`` with the proxy in place of the broker's address."""
        parts = urlsplit(AMQP_URL)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def go_down(self) -> None:
        self._up = False
        for writer in list(self._writers):
            writer.transport.abort()

    def come_up(self) -> None:
        self._up = True

    async def close(self) -> None:
        self.go_down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._tunnels:
            await asyncio.gather(*self._tunnels, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        tunnel = asyncio.current_task()
        assert tunnel is not None
        self._tunnels.add(tunnel)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer),
                self._pipe(up_reader, writer),
                return_exceptions=True,
            )
        finally:
            self._tunnels.discard(tunnel)
            for end in (writer, up_writer):
                self._writers.discard(end)
                end.transport.abort()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.transport.abort()
