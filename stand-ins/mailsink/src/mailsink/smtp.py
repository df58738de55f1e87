"""The SMTP side of the sink: an aiosmtpd server that stores every message it receives
(parsed when first read: :class:`~mailsink.mailbox.Received`)."""

import asyncio
import logging
import uuid
import weakref
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Final

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from mailsink.mailbox import Mailbox, Received

logger = logging.getLogger(__name__)

_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_message_id() -> str:
    """A random 22-character base62 ID, the form Mailpit's IDs take."""
    number = uuid.uuid4().int
    chars: list[str] = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


_HEADERS: Final = BytesHeaderParser(policy=compat32)


def _subject_of(raw: bytes) -> str:
    """The decoded Subject, from the headers alone (for the log line)."""
    subject = _HEADERS.parsebytes(raw).get("Subject")
    if subject is None:
        return ""
    try:
        return str(make_header(decode_header(str(subject))))
    except (ValueError, LookupError):
        return str(subject)


class CaptureHandler:
    """aiosmtpd handler that adds each message to the mailbox, to be parsed when read."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    async def handle_DATA(  # noqa: N802 - the hook name aiosmtpd looks for
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = Received(
            id=new_message_id(),
            raw=raw,
            received_at=datetime.now(UTC),
            envelope_sender=envelope.mail_from,
            envelope_recipients=tuple(envelope.rcpt_tos),
        )
        self._mailbox.add(message)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "received message %s from %s to %s, subject %r, %d bytes",
                message.id,
                envelope.mail_from,
                ", ".join(envelope.rcpt_tos),
                _subject_of(raw),
                len(raw),
            )
        return "250 2.0.0 Message accepted for delivery"


def _accept_any_credentials(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
) -> AuthResult:
    # Like Mailpit with --smtp-auth-accept-any: senders configured with credentials still work.
    return AuthResult(success=True)


class SmtpServer:
    """A listening SMTP server bound to one address, on the running event loop."""

    def __init__(self, server: asyncio.Server, connections: weakref.WeakSet[SMTP]) -> None:
        self._server = server
        self._connections = connections

    @property
    def port(self) -> int:
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        self._server.close()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.close()
        await self._server.wait_closed()


async def start_smtp_server(
    mailbox: Mailbox,
    *,
    host: str,
    port: int,
    hostname: str,
    max_message_bytes: int,
) -> SmtpServer:
    """Listen for SMTP on ``host``:``port`` (0 picks a free port) and capture into ``mailbox``."""
    loop = asyncio.get_running_loop()
    handler = CaptureHandler(mailbox)
    connections: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def new_connection() -> SMTP:
        connection = SMTP(
            handler,
            hostname=hostname,
            data_size_limit=max_message_bytes,
            enable_SMTPUTF8=True,
            auth_require_tls=False,
            authenticator=_accept_any_credentials,
            loop=loop,
        )
        connections.add(connection)
        return connection

    server = await loop.create_server(new_connection, host=host, port=port)
    return SmtpServer(server, connections)
