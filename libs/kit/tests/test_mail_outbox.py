"""The mail outbox against real PostgreSQL and a real SMTP server (the mail sink)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from emporium_kit.email import EmailSender, RenderedEmail, SmtpSettings
from emporium_kit.mail_outbox import MailOutboxSender, define_mail_outbox_table, queue_email
from emporium_testkit.isolation import recreate_database, worker_database_url
from emporium_testkit.processes import free_port
from mailsink.settings import MailSinkSettings
from mailsink.sink import MailSink

metadata = sa.MetaData()
mail_outbox = define_mail_outbox_table(metadata)
EMAIL = RenderedEmail(
    subject="Your link", text="Open https://x.example/t?token=abc", html="<p>hi</p>"
)


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    url = worker_database_url("emporium_kit_mail")
    await recreate_database(url)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def empty(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.execute(sa.delete(mail_outbox))
    return engine


@pytest.fixture
async def sink() -> AsyncIterator[MailSink]:
    async with MailSink(MailSinkSettings(smtp_port=0, http_port=0)) as running:
        yield running


def sender_to(port: int) -> EmailSender:
    return EmailSender(
        SmtpSettings(port=port, timeout_seconds=2, max_attempts=1, retry_initial_seconds=0.01)
    )


async def rows(engine: AsyncEngine) -> list[sa.Row[tuple[object, ...]]]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(mail_outbox))).all())


async def test_an_email_queued_in_a_rolled_back_transaction_is_never_sent(
    empty: AsyncEngine, sink: MailSink
) -> None:
    async with empty.connect() as conn, conn.begin() as tx:
        await queue_email(conn, mail_outbox, "ghost@example.com", EMAIL)
        await tx.rollback()
    assert await MailOutboxSender(empty, mail_outbox, sender_to(sink.smtp_port)).send_pending() == 0
    assert len(sink.mailbox) == 0


async def test_a_committed_email_is_sent_once_and_its_row_deleted(
    empty: AsyncEngine, sink: MailSink
) -> None:
    async with empty.begin() as conn:
        await queue_email(
            conn, mail_outbox, "ada@example.com", EMAIL, headers={"X-Request-ID": "req-9"}
        )
    sender = MailOutboxSender(empty, mail_outbox, sender_to(sink.smtp_port))
    assert await sender.send_pending() == 1
    assert await sender.send_pending() == 0
    [message] = list(sink.mailbox.newest_first())
    assert [a.address for a in message.to] == ["ada@example.com"]
    assert message.subject == "Your link"
    assert await rows(empty) == []  # the single-use link is not kept


async def test_smtp_down_keeps_the_email_and_backs_off_then_it_is_delivered(
    empty: AsyncEngine, sink: MailSink
) -> None:
    async with empty.begin() as conn:
        await queue_email(conn, mail_outbox, "later@example.com", EMAIL)
    down = MailOutboxSender(
        empty, mail_outbox, sender_to(free_port()), retry_base_seconds=0.01, retry_max_seconds=0.01
    )
    assert await down.send_pending() == 0
    [row] = await rows(empty)
    assert row.attempts == 1
    assert row.last_error
    up = MailOutboxSender(empty, mail_outbox, sender_to(sink.smtp_port))
    async with empty.begin() as conn:  # the back-off has passed
        await conn.execute(sa.update(mail_outbox).values(next_attempt_at=sa.func.now()))
    assert await up.send_pending() == 1
    assert [m.subject for m in sink.mailbox.newest_first()] == ["Your link"]


async def test_a_leased_email_is_not_sent_by_a_second_sender(
    empty: AsyncEngine, sink: MailSink
) -> None:
    async with empty.begin() as conn:
        await queue_email(conn, mail_outbox, "once@example.com", EMAIL)
    # A first sender took the lease and died before sending.
    async with empty.begin() as conn:
        await conn.execute(
            sa.update(mail_outbox).values(
                next_attempt_at=sa.func.now() + sa.text("interval '2 minutes'")
            )
        )
    other = MailOutboxSender(empty, mail_outbox, sender_to(sink.smtp_port))
    assert await other.send_pending() == 0
    async with empty.begin() as conn:  # the lease expires
        await conn.execute(sa.update(mail_outbox).values(next_attempt_at=sa.func.now()))
    assert await other.send_pending() == 1
    assert len(sink.mailbox) == 1
