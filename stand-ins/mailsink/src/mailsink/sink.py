"""Both servers of the sink on one event loop: SMTP in, HTTP out, one shared mailbox."""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from mailsink.http_api import create_app
from mailsink.mailbox import Mailbox
from mailsink.settings import MailSinkSettings
from mailsink.smtp import SmtpServer, start_smtp_server

logger = logging.getLogger(__name__)


class _EmbeddedHttpServer(uvicorn.Server):
    """A uvicorn server that runs inside someone else's event loop.

    It leaves signal handling to the owner of the loop and says when it is listening.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


class MailSinkStartFailed(RuntimeError):
    """The HTTP server stopped before it was listening."""


class MailSink:
    """The running sink. ``await start()``, then read the ports; ``await stop()`` to end.

    Ports of 0 in the settings pick free ports, which tests rely on.
    """

    def __init__(self, settings: MailSinkSettings, mailbox: Mailbox | None = None) -> None:
        self.settings = settings
        self.mailbox = mailbox or Mailbox(settings.max_messages)
        self._smtp: SmtpServer | None = None
        self._http: _EmbeddedHttpServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._http_socket: socket.socket | None = None

    @property
    def smtp_port(self) -> int:
        if self._smtp is None:
            raise RuntimeError("the mail sink is not running")
        return self._smtp.port

    @property
    def http_port(self) -> int:
        if self._http_socket is None:
            raise RuntimeError("the mail sink is not running")
        port: int = self._http_socket.getsockname()[1]
        return port

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.http_port}"

    async def start(self) -> None:
        if self._smtp is not None:
            raise RuntimeError("the mail sink is already running")
        settings = self.settings
        self._smtp = await start_smtp_server(
            self.mailbox,
            host=settings.smtp_host,
            port=settings.smtp_port,
            hostname=settings.smtp_hostname,
            max_message_bytes=settings.max_message_bytes,
        )
        try:
            await self._start_http()
        except BaseException:
            await self.stop()
            raise
        logger.info(
            "mail sink listening: SMTP %s:%d, HTTP %s",
            settings.smtp_host,
            self.smtp_port,
            self.http_url,
        )

    async def _start_http(self) -> None:
        settings = self.settings
        # Binding the socket here (not in uvicorn) makes port 0 usable and a bind error an
        # exception rather than uvicorn's sys.exit.
        http_socket = socket.create_server((settings.http_host, settings.http_port))
        http_socket.setblocking(False)
        self._http_socket = http_socket
        config = uvicorn.Config(
            create_app(self.mailbox),
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            server_header=False,
        )
        self._http = _EmbeddedHttpServer(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[http_socket]))
        listening = asyncio.create_task(self._http.listening.wait())
        try:
            await asyncio.wait({self._http_task, listening}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
        if not self._http.listening.is_set():
            stopped, self._http_task, self._http = self._http_task, None, None
            stopped.result()  # re-raises why uvicorn stopped, if it raised
            raise MailSinkStartFailed("the HTTP server stopped before listening")

    async def stop(self) -> None:
        """Stop both servers; safe to call more than once."""
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await self._http_task
        self._http, self._http_task = None, None
        if self._http_socket is not None:
            self._http_socket.close()
            self._http_socket = None
        if self._smtp is not None:
            await self._smtp.close()
            self._smtp = None

    async def __aenter__(self) -> "MailSink":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
