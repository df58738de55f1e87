"""How every service is served: uvicorn (uvloop, httptools) with a bounded request head.

uvicorn's httptools protocol keeps every header of a request in memory until the
head is complete, however large it grows: httptools has no limit of its own
(h11's ``h11_max_incomplete_event_size`` is the only one uvicorn has, and it
answers a bare 400). :class:`BoundedHttpToolsProtocol` counts the head as it
arrives and, past ``max_header_bytes``, answers 431 with a problem document and
closes the connection, before the rest is read (ADR 0008). It takes its limit
from uvicorn's ``h11_max_incomplete_event_size``, so one setting bounds both
parsers.

Its transport is a :class:`CoalescingTransport`: what one turn of the event loop
writes to a connection leaves in one system call. uvicorn writes a response's
head and its body separately (two ``send`` calls, two packets on the wire);
on the machines this runs on a loopback write costs more than anything else a
cached page does (docs/performance.md, session 7), and every ASGI app sends a
small response's start and body in the same turn. It also closes a connection
the way RFC 9112 section 9.6 asks when the client may still be sending (a body
refused with 413 before it was read, a head refused with 431): it half-closes,
reads and drops what keeps arriving for a bounded time, and only then closes,
so the kernel does not answer the unread bytes with a reset that destroys the
answer before the client has read it (ADR 0020).

Every ``python -m <service>`` calls :func:`serve`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from emporium_kit.context import REQUEST_ID_HEADER
from emporium_kit.middleware import API_CSP, SECURITY_HEADERS
from emporium_kit.problems import PROBLEM_CONTENT_TYPE, problem_type

DEFAULT_MAX_HEADER_BYTES = 16_384
# The request line is not part of the header block, but it is read before it and
# is just as unbounded in httptools: this much of it is tolerated on top.
REQUEST_LINE_ALLOWANCE_BYTES = 8_192
# A lingering close ends when the client closes its side, after this long, or
# after this much more of its request has been read and dropped (nginx waits up
# to 30 s; a client that keeps sending after an error answer is not waited on).
LINGER_SECONDS = 5.0
LINGER_MAX_BYTES = 8 * 1024 * 1024
# What a connection's transport holds for the end of a turn, at most: a small answer's
# head and body go out together; past this, writes go straight through (the default
# high-water mark of asyncio's and uvloop's transports).
HOLD_AT_MOST_BYTES = 64 * 1024


class _LingeringClose(asyncio.Protocol):
    """Takes over a half-closed connection: drops what arrives until the client closes.

    The protocol that served the connection still hears ``connection_lost``
    (uvicorn counts its connections that way) and its writes' flow control.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        served: asyncio.BaseProtocol,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._transport = transport
        self._served = served
        self._dropped = 0
        self._deadline = loop.call_later(LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        self._dropped += len(data)
        if self._dropped > LINGER_MAX_BYTES:
            self._transport.close()

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def pause_writing(self) -> None:
        self._served.pause_writing()

    def resume_writing(self) -> None:
        self._served.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.cancel()
        self._served.connection_lost(exc)


class CoalescingTransport(asyncio.Transport):
    """A connection's transport whose writes of one event-loop turn go out together.

    The first write of a turn is held and a flush is scheduled with
    ``call_soon``; later writes of the same turn join it, until
    ``HOLD_AT_MOST_BYTES`` are held: then they go out at once, so that an
    application streaming a large answer within one turn meets the client's
    back-pressure as it would without this transport. ``close()`` flushes
    first, ``abort()`` drops what is held. Everything else is the wrapped
    transport's: flow control (``pause_writing`` reaches the protocol when the
    held bytes are written), reading, extra info.

    ``close()`` lingers when ``request_unread`` says the client may still be
    sending: the answer and a FIN go out, what arrives after is read and
    dropped (:class:`_LingeringClose`), and the socket closes when the client
    closes its side or the linger's bounds are reached.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        request_unread: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._request_unread = request_unread
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data or self._closing:
            return
        self._held.append(bytes(data))
        self._held_bytes += len(data)
        if self._held_bytes >= HOLD_AT_MOST_BYTES:
            # Written through at once: the wrapped transport's flow control then pauses
            # the protocol now, before the application's next send, rather than after
            # it has pushed a whole streamed answer into memory within one turn.
            self._flush()
        elif len(self._held) == 1:
            self._loop.call_soon(self._flush)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        if not self._held:
            return
        held = self._held
        self._held = []
        self._held_bytes = 0
        if self._transport.is_closing():
            return
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        if self._closing:
            return
        self._flush()
        self._closing = True
        transport = self._transport
        if (
            self._request_unread is None
            or transport.is_closing()
            or not self._request_unread()
            or not transport.can_write_eof()
        ):
            transport.close()
            return
        transport.set_protocol(_LingeringClose(transport, transport.get_protocol(), self._loop))
        transport.write_eof()
        transport.resume_reading()

    def abort(self) -> None:
        self._held = []
        self._held_bytes = 0
        self._closing = True
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._held_bytes + self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class _HeadersTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request head that is too large."""


def headers_too_large_response(max_header_bytes: int) -> bytes:
    """The raw 431 response, written before any ASGI app sees the request."""
    request_id = uuid.uuid4().hex
    body = orjson.dumps(
        {
            "type": problem_type("headers-too-large"),
            "title": "Request Header Fields Too Large",
            "status": 431,
            "detail": f"Request headers are limited to {max_header_bytes} bytes.",
            "request_id": request_id,
        }
    )
    headers = [
        ("content-type", PROBLEM_CONTENT_TYPE),
        ("content-length", str(len(body))),
        ("connection", "close"),
        (REQUEST_ID_HEADER.lower(), request_id),
        *SECURITY_HEADERS,
        ("content-security-policy", API_CSP),
    ]
    head = "HTTP/1.1 431 Request Header Fields Too Large\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers
    )
    return head.encode("latin-1") + b"\r\n" + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head (431 above the limit).

    Two counters: the exact size of the header lines parsed so far (name, value
    and 4 bytes of separators each, the measure the edge middleware uses too),
    and the raw bytes of the reads that arrive while a head is incomplete, which
    also covers a request line or a single header line that httptools is still
    accumulating. A head is thus refused at most one read (64 KiB) past
    ``max_header_bytes`` plus the request-line allowance.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_header_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES
        self._header_bytes = 0
        self._raw_head_bytes = 0
        self._in_head = True
        self._began_in_this_read = False
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop, self._request_unread))

    def _request_unread(self) -> bool:
        """Whether the client may still be sending: a refused head, an unfinished body."""
        return self._refused or (self.cycle is not None and self.cycle.more_body)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        continuing = self._in_head
        self._began_in_this_read = False
        super().data_received(data)
        if self._refused or not self._in_head:
            return
        # The head is still incomplete. When it began in an earlier read, all of
        # this read is head; when it began in this one, the read may also hold
        # the end of the previous request, so the exact counter alone decides.
        if continuing and not self._began_in_this_read:
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > self.max_header_bytes + REQUEST_LINE_ALLOWANCE_BYTES:
                self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._began_in_this_read = True
        self._header_bytes = 0
        self._raw_head_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.max_header_bytes:
            self._refused = True
            raise _HeadersTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._raw_head_bytes = 0
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # httptools reports an exception raised in a callback as a parser error.
        if self._refused:
            self._refuse()
            return
        super().send_400_response(msg)

    def _refuse(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(headers_too_large_response(self.max_header_bytes))
            self.transport.close()


BOUNDED_HTTPTOOLS = f"{__name__}:{BoundedHttpToolsProtocol.__name__}"


def serve(
    app_factory: str,
    *,
    host: str,
    port: int,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    workers: int = 1,
    graceful_shutdown_seconds: int = 20,
) -> None:
    """Run ``app_factory`` (``module:function``) under uvicorn until SIGINT/SIGTERM.

    uvloop and the bounded httptools protocol; no ``Server`` banner, no proxy
    headers (the kit's client-IP resolver decides whom to believe), no uvicorn
    access log (the kit logs one line per request). With several workers,
    prometheus-client's multiprocess mode needs a shared directory: when
    ``PROMETHEUS_MULTIPROC_DIR`` is not set, a fresh one is made for this run.
    """
    made_metrics_dir: str | None = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made_metrics_dir = tempfile.mkdtemp(prefix="emporium-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made_metrics_dir
    try:
        uvicorn.run(
            app_factory,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http=BOUNDED_HTTPTOOLS,
            lifespan="on",
            server_header=False,
            proxy_headers=False,
            access_log=False,
            timeout_graceful_shutdown=graceful_shutdown_seconds,
            h11_max_incomplete_event_size=max_header_bytes,
            log_config=None,
        )
    finally:
        if made_metrics_dir is not None:
            shutil.rmtree(made_metrics_dir, ignore_errors=True)
