"""A TCP proxy in front of a real server (RabbitMQ, PostgreSQL), to play an outage.

``go_down()`` drops every tunnel and aborts each new connection at once, as an
unreachable server would; ``come_up()`` forwards again. The server itself is
never touched, so every other test goes on using it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit


def proxied_url(url: str, port: int, **query: str) -> str:
    """``url`` with ``127.0.0.1:<port>`` in place of its server's address (``query`` replaces
    the query string when given)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    extra = "&".join(f"{key}={value}" for key, value in query.items())
    return urlunsplit(parts._replace(netloc=netloc, query=extra or parts.query))


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._tunnels: set[asyncio.Task[Any]] = set()
        self.port = 0
        self.refused = 0

    @classmethod
    def to(cls, url: str, *, default_port: int) -> Self:
        """A proxy to the server ``url`` names."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or default_port)

    def url_for(self, url: str, **query: str) -> str:
        """``url`` pointed at this proxy instead of its server."""
        return proxied_url(url, self.port, **query)

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
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
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
