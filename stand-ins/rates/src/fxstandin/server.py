"""The running stand-in: one uvicorn server inside the caller's event loop.

``async with RatesStandIn(settings) as standin:`` starts it (a port of 0 picks
a free one, which tests rely on) and stops it on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from fxstandin.http_api import Behaviour, create_app
from fxstandin.settings import StandInSettings

logger = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """Leaves signals to the loop's owner and says when it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


class StandInStartFailed(RuntimeError):
    """The HTTP server stopped before it was listening."""


class RatesStandIn:
    """The stand-in's server. ``behaviour`` is what ``/_control`` changes; tests may change
    it directly too."""

    def __init__(self, settings: StandInSettings) -> None:
        self.settings = settings
        self.behaviour = Behaviour(
            fail_status=settings.fail_status,
            delay_seconds=settings.delay_seconds,
            rates_date=settings.rates_date,
        )
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the rates stand-in is not running")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the rates stand-in is already running")
        # Bound here, not by uvicorn: port 0 works and a bind error is an exception.
        bound = socket.create_server((self.settings.host, self.settings.port))
        bound.setblocking(False)
        self._socket = bound
        config = uvicorn.Config(
            create_app(self.behaviour, control=self.settings.control),
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            server_header=False,
            # A slow answer (delay_seconds) must not hold a stop for long.
            timeout_graceful_shutdown=1,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[bound]))
        listening = asyncio.create_task(self._server.listening.wait())
        try:
            await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
        if not self._server.listening.is_set():
            stopped, self._task, self._server = self._task, None, None
            await self.stop()
            stopped.result()
            raise StandInStartFailed("the HTTP server stopped before listening")
        logger.info("rates stand-in listening on %s", self.url)

    async def stop(self) -> None:
        """Stop the server; safe to call more than once."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server, self._task = None, None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def __aenter__(self) -> RatesStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
