"""A durable queue of outgoing emails, written in the caller's transaction.

The email row commits with the state change that caused it (a password-reset
token, say), so a crash can neither send an email for a change that rolled
back nor lose one for a change that committed. :class:`MailOutboxSender`
delivers due rows through :class:`~emporium_kit.email.EmailSender`:

* it *leases* a batch (``next_attempt_at`` pushed past the lease, in one short
  transaction with ``FOR UPDATE SKIP LOCKED``, so replicas share the work) and
  sends outside any transaction;
* a sent email's row is deleted at once (its body may hold a single-use link);
* a failed one gets ``attempts + 1``, ``last_error`` and a backed-off
  ``next_attempt_at``; a sender that dies mid-send leaves the lease to expire
  and another pass sends it again (at least once, never lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Mapping
from datetime import timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from emporium_kit.email import EmailDeliveryFailed, EmailSender, RenderedEmail

log = structlog.get_logger(__name__)


def define_mail_outbox_table(metadata: sa.MetaData, *, name: str = "mail_outbox") -> sa.Table:
    table = sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("text_body", sa.Text, nullable=False),
        sa.Column("html_body", sa.Text, nullable=False),
        sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    sa.Index(f"ix_{name}_next_attempt_at", table.c.next_attempt_at)
    return table


async def queue_email(
    session_or_conn: AsyncSession | AsyncConnection,
    table: sa.Table,
    to: str,
    email: RenderedEmail,
    *,
    headers: Mapping[str, str] | None = None,
) -> uuid.UUID:
    """Queue ``email`` in the caller's transaction; it is sent only if that commits."""
    email_id = uuid.uuid4()
    await session_or_conn.execute(
        sa.insert(table).values(
            id=email_id,
            recipient=to,
            subject=email.subject,
            text_body=email.text,
            html_body=email.html,
            headers=dict(headers or {}),
        )
    )
    return email_id


def retry_delay(attempts: int, *, base: float, cap: float) -> float:
    """Exponential backoff with full jitter, in seconds."""
    return random.uniform(0, min(cap, base * 2 ** max(0, attempts - 1)))  # noqa: S311


class MailOutboxSender:
    def __init__(
        self,
        engine: AsyncEngine,
        table: sa.Table,
        sender: EmailSender,
        *,
        batch_size: int = 20,
        poll_interval: float = 0.5,
        lease_seconds: float = 120.0,
        retry_base_seconds: float = 5.0,
        retry_max_seconds: float = 600.0,
    ) -> None:
        self._engine = engine
        self._table = table
        self._sender = sender
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._lease = timedelta(seconds=lease_seconds)
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._stopping = asyncio.Event()

    async def send_pending(self) -> int:
        """One pass: lease the due emails, send them; returns how many were sent."""
        table = self._table
        due = (
            sa.select(table.c.id)
            .where(table.c.next_attempt_at <= sa.func.now())
            .order_by(table.c.next_attempt_at)
            .limit(self._batch_size)
            .with_for_update(skip_locked=True)
        )
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.update(table)
                    .where(table.c.id.in_(due.scalar_subquery()))
                    .values(next_attempt_at=sa.func.now() + self._lease)
                    .returning(*table.c)
                )
            ).all()
        sent = 0
        for row in rows:
            email = RenderedEmail(subject=row.subject, text=row.text_body, html=row.html_body)
            try:
                await self._sender.send(row.recipient, email, headers=row.headers or None)
            except EmailDeliveryFailed as exc:
                delay = retry_delay(row.attempts + 1, base=self._retry_base, cap=self._retry_max)
                async with self._engine.begin() as conn:
                    await conn.execute(
                        sa.update(table)
                        .where(table.c.id == row.id)
                        .values(
                            attempts=table.c.attempts + 1,
                            last_error=str(exc)[:2000],
                            next_attempt_at=sa.func.now() + timedelta(seconds=delay),
                        )
                    )
                log.warning(
                    "email_delivery_deferred", email_id=str(row.id), attempts=row.attempts + 1
                )
                continue
            async with self._engine.begin() as conn:
                await conn.execute(sa.delete(table).where(table.c.id == row.id))
            sent += 1
        return sent

    async def run(self) -> None:
        """Send until :meth:`stop`; a failing pass (database down) is logged and retried."""
        while not self._stopping.is_set():
            try:
                sent = await self.send_pending()
            except Exception as exc:  # keep the loop alive whatever a pass hits
                log.warning("mail_outbox_pass_failed", error=repr(exc))
                sent = 0
            if sent < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._poll_interval)

    def stop(self) -> None:
        self._stopping.set()
