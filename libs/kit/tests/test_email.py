"""The email adapter against the real mail sink: templates in, Mailpit-shaped JSON out."""

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import aiosmtplib
import httpx
import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr, ValidationError

from emporium_kit.email import (
    EmailDeliveryFailed,
    EmailSender,
    EmailTemplateError,
    EmailTemplates,
    InvalidEmailHeader,
    InvalidEmailRecipient,
    RenderedEmail,
    SmtpSettings,
    is_transient_smtp_error,
)
from mailsink import MailSink, MailSinkSettings

TEMPLATE_FILES = {
    "order_shipped.subject.txt": "Ihre Bestellung {{ order_number }} ist unterwegs ✓\n",
    "order_shipped.txt": "Hallo {{ name }},\n\nBestellung {{ order_number }} ist unterwegs.\n",
    "order_shipped.html": "<p>Hallo <b>{{ name }}</b>, Bestellung {{ order_number }}.</p>\n",
}
CONTEXT = {"name": "Zoë <Admin>", "order_number": "EMP-1042"}


@pytest.fixture
def templates(tmp_path: Path) -> EmailTemplates:
    for file_name, content in TEMPLATE_FILES.items():
        (tmp_path / file_name).write_text(content, encoding="utf-8")
    return EmailTemplates(tmp_path)


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[MailSink]:
    async with MailSink(MailSinkSettings(smtp_port=0, http_port=0)) as running:
        yield running


@pytest_asyncio.fixture
async def mail_api(sink: MailSink) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sink.http_url, timeout=5) as client:
        yield client


def _sender_for(port: int, **overrides: object) -> EmailSender:
    settings = SmtpSettings.model_validate(
        {"port": port, "local_hostname": "tests.local", "timeout_seconds": 5, **overrides}
    )
    return EmailSender(settings)


@pytest.fixture
def sender(sink: MailSink) -> EmailSender:
    return _sender_for(sink.smtp_port)


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on: bound, then released, by this test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# Templates


def test_render_fills_subject_text_and_html(templates: EmailTemplates) -> None:
    email = templates.render("order_shipped", CONTEXT)

    assert email == RenderedEmail(
        subject="Ihre Bestellung EMP-1042 ist unterwegs ✓",
        text="Hallo Zoë <Admin>,\n\nBestellung EMP-1042 ist unterwegs.\n",
        html="<p>Hallo <b>Zoë &lt;Admin&gt;</b>, Bestellung EMP-1042.</p>\n",
    )


def test_subject_template_newlines_collapse_to_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.subject.txt").write_text("Line one\nBcc: {{ who }}\n")
    (tmp_path / "x.txt").write_text("t")
    (tmp_path / "x.html").write_text("h")

    email = EmailTemplates(tmp_path).render("x", {"who": "evil@example.test"})

    assert email.subject == "Line one Bcc: evil@example.test"


def test_undefined_variable_is_an_error(templates: EmailTemplates) -> None:
    with pytest.raises(EmailTemplateError, match=r"order_shipped\.subject\.txt.*order_number"):
        templates.render("order_shipped", {"name": "Zoë"})


def test_missing_template_is_an_error(templates: EmailTemplates) -> None:
    with pytest.raises(EmailTemplateError, match=r"password_reset\.subject\.txt': not found"):
        templates.render("password_reset", CONTEXT)


# Settings


def test_settings_defaults_point_at_the_local_sink() -> None:
    settings = SmtpSettings()

    assert (settings.host, settings.port, settings.use_tls, settings.start_tls) == (
        "127.0.0.1",
        1025,
        False,
        False,
    )
    assert settings.timeout_seconds == 10.0
    assert settings.max_attempts == 3
    assert settings.sender_address == "no-reply@emporium.local"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"use_tls": True, "start_tls": True}, "exclude each other"),
        ({"password": "secret"}, "needs a username"),
        ({"sender": "Emporium"}, "has no email address"),
        ({"port": 0}, "greater than or equal to 1"),
    ],
)
def test_inconsistent_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SmtpSettings.model_validate(overrides)


def test_password_is_kept_secret() -> None:
    settings = SmtpSettings(username="mailer", password=SecretStr("hunter22"))

    assert "hunter22" not in repr(settings)


# Building the message


def test_message_is_multipart_alternative_with_id_and_date(templates: EmailTemplates) -> None:
    message = EmailSender(SmtpSettings()).build_message(
        "zoe@example.test",
        templates.render("order_shipped", CONTEXT),
        headers={"X-Request-ID": "req-7"},
    )

    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert str(message["Message-ID"]).endswith("@emporium.local>")
    assert message["Date"] is not None
    assert message["X-Request-ID"] == "req-7"
    assert message["From"] == "Emporium <no-reply@emporium.local>"


@pytest.mark.parametrize("to", ["", "not an address", "a@example.test, b@example.test", "nodomain"])
def test_recipient_must_be_one_address(to: str) -> None:
    with pytest.raises(InvalidEmailRecipient):
        EmailSender(SmtpSettings()).build_message(to, RenderedEmail("s", "t", "h"))


@pytest.mark.parametrize("name", ["Bcc", "subject", "Message-ID", "X Bad", "X-Colon:"])
def test_extra_headers_cannot_replace_the_senders_or_be_malformed(name: str) -> None:
    with pytest.raises(InvalidEmailHeader):
        EmailSender(SmtpSettings()).build_message(
            "zoe@example.test", RenderedEmail("s", "t", "h"), headers={name: "x"}
        )


def test_header_values_cannot_inject_lines() -> None:
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        EmailSender(SmtpSettings()).build_message(
            "zoe@example.test",
            RenderedEmail("s", "t", "h"),
            headers={"X-Request-ID": "a\r\nBcc: evil@example.test"},
        )


# Delivery through the mail sink


@pytest.mark.asyncio
async def test_sent_email_is_readable_through_the_sink_api(
    sender: EmailSender, templates: EmailTemplates, mail_api: httpx.AsyncClient
) -> None:
    await sender.send(
        "Zoë Müller <zoe@example.test>",
        templates.render("order_shipped", CONTEXT),
        headers={"X-Request-ID": "req-42"},
    )

    listing = (await mail_api.get("/api/v1/messages")).json()
    assert listing["total"] == 1
    summary = listing["messages"][0]
    assert summary["To"] == [{"Name": "Zoë Müller", "Address": "zoe@example.test"}]
    assert summary["From"] == {"Name": "Emporium", "Address": "no-reply@emporium.local"}
    assert summary["Subject"] == "Ihre Bestellung EMP-1042 ist unterwegs ✓"
    message = (await mail_api.get(f"/api/v1/message/{summary['ID']}")).json()
    assert message["Text"] == "Hallo Zoë <Admin>,\n\nBestellung EMP-1042 ist unterwegs.\n"
    assert message["HTML"] == "<p>Hallo <b>Zoë &lt;Admin&gt;</b>, Bestellung EMP-1042.</p>\n"
    assert message["MessageID"].endswith("@emporium.local")
    assert message["ReturnPath"] == "no-reply@emporium.local"
    raw = (await mail_api.get(f"/api/v1/message/{summary['ID']}/raw")).text
    assert "\r\nX-Request-ID: req-42\r\n" in raw


def test_the_bytes_sent_carry_the_headers_and_parts_of_the_structured_message(
    templates: EmailTemplates,
) -> None:
    sender = EmailSender(SmtpSettings())
    rendered = templates.render("order_shipped", CONTEXT)
    headers = {"X-Request-ID": "req-7", "X-Note": "für Zoë"}
    raw, recipient = sender.build_bytes("Zoë Müller <zoe@example.test>", rendered, headers=headers)
    sent = BytesParser(EmailMessage, policy=default).parsebytes(raw)
    structured = sender.build_message("Zoë Müller <zoe@example.test>", rendered, headers=headers)

    assert recipient == "zoe@example.test"
    assert raw.isascii()  # 7-bit throughout: encoded words and quoted-printable
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    for name in ("From", "To", "Subject", "X-Request-ID", "X-Note"):
        assert str(sent[name]) == str(structured[name]), name
    assert [
        (part.get_content_type(), part.get_content().replace("\r\n", "\n"))
        for part in sent.iter_parts()
    ] == [(part.get_content_type(), part.get_content()) for part in structured.iter_parts()]


def test_an_internationalised_address_is_left_to_the_structured_message() -> None:
    with pytest.raises(InvalidEmailRecipient, match="SMTPUTF8"):
        EmailSender(SmtpSettings()).build_bytes("zoë@exämple.test", RenderedEmail("s", "t", "h"))


@pytest.mark.asyncio
async def test_latest_search_and_delete_through_the_sink_api(
    sender: EmailSender, mail_api: httpx.AsyncClient
) -> None:
    for to in ("alice@example.test", "bob@example.test", "alice@example.test"):
        await sender.send(to, RenderedEmail(f"for {to}", "text", "<p>html</p>"))

    latest = (await mail_api.get("/api/v1/message/latest")).json()
    assert latest["To"] == [{"Name": "", "Address": "alice@example.test"}]
    found = (await mail_api.get("/api/v1/search", params={"query": "to:bob@example.test"})).json()
    assert [m["Subject"] for m in found["messages"]] == ["for bob@example.test"]
    assert found["messages_count"] == 1

    deleted = await mail_api.request("DELETE", "/api/v1/messages", json={"IDs": [latest["ID"]]})
    assert deleted.status_code == 200
    remaining = (await mail_api.get("/api/v1/messages")).json()
    assert [m["To"][0]["Address"] for m in remaining["messages"]] == [
        "bob@example.test",
        "alice@example.test",
    ]
    assert (await mail_api.get(f"/api/v1/message/{latest['ID']}")).status_code == 404

    assert (await mail_api.delete("/api/v1/messages")).status_code == 200
    assert (await mail_api.get("/api/v1/messages")).json()["total"] == 0


@pytest.mark.asyncio
async def test_unknown_message_id_is_404(mail_api: httpx.AsyncClient) -> None:
    response = await mail_api.get("/api/v1/message/0000000000000000000000")

    assert response.status_code == 404
    assert response.json() == {"Error": "message not found"}


@pytest.mark.asyncio
async def test_sender_authenticates_when_given_credentials(
    sink: MailSink, mail_api: httpx.AsyncClient
) -> None:
    sender = _sender_for(sink.smtp_port, username="mailer", password="secret")

    await sender.send("zoe@example.test", RenderedEmail("authenticated", "t", "<p>h</p>"))

    assert (await mail_api.get("/api/v1/message/latest")).json()["Subject"] == "authenticated"


# Failures


@pytest.mark.asyncio
async def test_nothing_listening_raises_delivery_failed_after_every_attempt(
    free_port: int,
) -> None:
    sender = _sender_for(free_port, max_attempts=2, retry_initial_seconds=0, timeout_seconds=1)

    with pytest.raises(EmailDeliveryFailed) as failure:
        await sender.send("zoe@example.test", RenderedEmail("s", "t", "h"))

    assert failure.value.attempts == 2
    assert failure.value.recipient == "zoe@example.test"
    assert failure.value.code == "email_delivery_failed"
    assert isinstance(failure.value.__cause__, OSError)
    assert str(failure.value).startswith("email delivery failed after 2 attempts: ")


class _RefusingHandler:
    """Answers RCPT with the queued replies, then accepts; counts delivered messages."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.delivered = 0

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.replies:
            return self.replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.delivered += 1
        return "250 OK"


@pytest_asyncio.fixture
async def scripted_smtp() -> AsyncIterator[tuple[int, _RefusingHandler]]:
    handler = _RefusingHandler([])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="scripted.local", loop=loop), "127.0.0.1", 0
    )
    try:
        yield server.sockets[0].getsockname()[1], handler
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_temporary_refusal_is_retried_until_accepted(
    scripted_smtp: tuple[int, _RefusingHandler],
) -> None:
    port, handler = scripted_smtp
    handler.replies = ["451 4.3.0 try again later"]
    sender = _sender_for(port, max_attempts=3, retry_initial_seconds=0)

    await sender.send("zoe@example.test", RenderedEmail("s", "t", "h"))

    assert handler.delivered == 1


@pytest.mark.asyncio
async def test_permanent_refusal_fails_at_once(
    scripted_smtp: tuple[int, _RefusingHandler],
) -> None:
    port, handler = scripted_smtp
    handler.replies = ["550 5.1.1 no such user", "250 OK"]
    sender = _sender_for(port, max_attempts=3, retry_initial_seconds=0)

    with pytest.raises(EmailDeliveryFailed) as failure:
        await sender.send("nobody@example.test", RenderedEmail("s", "t", "h"))

    assert failure.value.attempts == 1
    assert handler.delivered == 0
    assert isinstance(failure.value.__cause__, aiosmtplib.SMTPRecipientsRefused)


class _CapturingHandler(_RefusingHandler):
    """Keeps the envelope and content of each message (the mail sink reads no 8-bit
    headers, so an SMTPUTF8 message is checked here)."""

    def __init__(self) -> None:
        super().__init__([])
        self.received: list[tuple[list[str], list[str], bytes]] = []

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        self.received.append((list(envelope.rcpt_tos), list(envelope.mail_options), content))
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.asyncio
async def test_an_internationalised_address_is_delivered_with_smtputf8() -> None:
    handler = _CapturingHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="utf8.local", enable_SMTPUTF8=True, loop=loop),
        "127.0.0.1",
        0,
    )
    sender = _sender_for(server.sockets[0].getsockname()[1])
    try:
        await sender.send("Zoë <zoë@exämple.test>", RenderedEmail("Grüße", "Hallo ü\n", "<p>ü</p>"))
        await sender.aclose()
    finally:
        server.close()
        await server.wait_closed()

    [(recipients, options, content)] = handler.received
    assert recipients == ["zoë@exämple.test"]
    assert "SMTPUTF8" in [option.upper() for option in options]
    message = BytesParser(EmailMessage, policy=default).parsebytes(content)
    assert message["Subject"] == "Grüße"
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "Hallo ü\n"


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(), True),
        (aiosmtplib.SMTPServerDisconnected("gone"), True),
        (aiosmtplib.SMTPConnectTimeoutError("slow"), True),
        (aiosmtplib.SMTPReadTimeoutError("slow"), True),
        (aiosmtplib.SMTPResponseException(421, "shutting down"), True),
        (aiosmtplib.SMTPDataError(452, "mailbox full"), True),
        (aiosmtplib.SMTPDataError(554, "rejected"), False),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), False),
        (aiosmtplib.SMTPNotSupported("no STARTTLS"), False),
        (aiosmtplib.SMTPConnectResponseError(554, "go away"), False),
        (ssl.SSLCertVerificationError("certificate verify failed"), False),
        (ValueError("bug"), False),
    ],
)
def test_transient_errors_are_told_from_permanent_ones(
    error: BaseException, transient: bool
) -> None:
    assert is_transient_smtp_error(error) is transient


class _CountingHandler(_RefusingHandler):
    """Counts the connections (EHLOs) that delivered the messages."""

    def __init__(self) -> None:
        super().__init__([])
        self.connections = 0

    async def handle_EHLO(  # noqa: N802 - aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses


async def _counting_server(
    handler: _CountingHandler, sessions: list[SMTP] | None = None
) -> tuple[asyncio.AbstractServer, int]:
    loop = asyncio.get_running_loop()
    opened = sessions if sessions is not None else []

    def session() -> SMTP:
        opened.append(SMTP(handler, hostname="counting.local", loop=loop))
        return opened[-1]

    server = await loop.create_server(session, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.asyncio
async def test_kept_connections_are_reused_and_bounded() -> None:
    handler = _CountingHandler()
    server, port = await _counting_server(handler)
    sender = _sender_for(port, pool_size=2)
    try:
        await asyncio.gather(
            *(sender.send(f"u{i}@example.test", RenderedEmail("s", "t", "h")) for i in range(20))
        )
        await sender.aclose()
    finally:
        server.close()
        await server.wait_closed()
    assert handler.delivered == 20
    assert handler.connections <= 2  # not one per email


@pytest.mark.asyncio
async def test_a_kept_connection_the_server_dropped_is_replaced_without_a_failed_attempt() -> None:
    handler, sessions = _CountingHandler(), []
    server, port = await _counting_server(handler, sessions)
    sender = _sender_for(port, pool_size=1, max_attempts=1)
    await sender.send("a@example.test", RenderedEmail("s", "t", "h"))
    for session in sessions:  # the server drops the idle connection (a restart, a timeout)
        assert session.transport is not None
        session.transport.close()
    await asyncio.sleep(0.05)
    try:
        await sender.send("b@example.test", RenderedEmail("s", "t", "h"))  # one attempt allowed
        await sender.aclose()
    finally:
        server.close()
        await server.wait_closed()
    assert handler.delivered == 2
    assert handler.connections == 2


@pytest.mark.asyncio
async def test_without_a_pool_every_email_has_its_connection() -> None:
    handler = _CountingHandler()
    server, port = await _counting_server(handler)
    sender = _sender_for(port, pool_size=0)
    try:
        for i in range(3):
            await sender.send(f"u{i}@example.test", RenderedEmail("s", "t", "h"))
    finally:
        server.close()
        await server.wait_closed()
    assert (handler.delivered, handler.connections) == (3, 3)
