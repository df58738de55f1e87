from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from mailsink.mailbox import Mailbox
from mailsink.message import CapturedMessage
from mailsink.parsing import parse_message
from mailsink.settings import MailSinkSettings
from mailsink.sink import MailSink

RECEIVED_AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)

RawBuilder = Callable[..., bytes]


def _build_raw(
    *,
    to: str = "alice@example.test",
    subject: str = "Hello",
    body: str = "Plain body",
    sender: str = "Shop <shop@example.test>",
    extra_headers: str = "",
) -> bytes:
    """A small single-part text message with CRLF line ends, as SMTP carries it."""
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        "Message-ID: <m-1@example.test>",
        *(line for line in extra_headers.splitlines() if line),
        "Content-Type: text/plain; charset=utf-8",
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


@pytest.fixture
def build_raw() -> RawBuilder:
    return _build_raw


@pytest.fixture
def received_at() -> datetime:
    return RECEIVED_AT


@pytest.fixture
def capture() -> Callable[..., CapturedMessage]:
    counter = iter(range(1, 1_000_000))

    def parse(raw: bytes, recipients: tuple[str, ...] = ()) -> CapturedMessage:
        return parse_message(
            raw,
            sink_id=f"id-{next(counter)}",
            received_at=RECEIVED_AT,
            envelope_sender="bounce@example.test",
            envelope_recipients=recipients,
        )

    return parse


@pytest.fixture
def sink_settings() -> MailSinkSettings:
    return MailSinkSettings(smtp_port=0, http_port=0, max_messages=50)


@pytest_asyncio.fixture
async def sink(sink_settings: MailSinkSettings) -> AsyncIterator[MailSink]:
    async with MailSink(sink_settings) as running:
        yield running


@pytest_asyncio.fixture
async def sink_http(sink: MailSink) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sink.http_url, timeout=5) as client:
        yield client


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox(max_messages=3)
