"""Outbox and inbox tables, defined in each service's own MetaData (and migrations)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection


def define_outbox_table(metadata: sa.MetaData, *, name: str = "outbox") -> sa.Table:
    """The transactional outbox: one row per event or job, written with the state change.

    The relay reads rows with ``published_at IS NULL`` and ``next_attempt_at <= now()``;
    the partial index keeps that lookup small however many published rows are kept.
    """
    table = sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Uuid(), primary_key=True),
        # "events": an EventEnvelope for the events exchange, by routing key;
        # "jobs": a job message for the jobs exchange, routing_key naming its queue.
        sa.Column("destination", sa.Text(), nullable=False, server_default=sa.text("'events'")),
        sa.Column("routing_key", sa.Text(), nullable=False),
        sa.Column("payload", JSONB(), nullable=False),
        sa.Column("headers", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    sa.Index(
        f"ix_{name}_pending_next_attempt_at",
        table.c.next_attempt_at,
        postgresql_where=table.c.published_at.is_(None),
    )
    return table


def define_inbox_table(metadata: sa.MetaData, *, name: str = "inbox") -> sa.Table:
    """The consumer inbox: the message ids each consumer has already handled."""
    return sa.Table(
        name,
        metadata,
        sa.Column("consumer", sa.Text(), primary_key=True),
        sa.Column("message_id", sa.Uuid(), primary_key=True),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )


async def prune_messaging_tables(
    conn: AsyncConnection, outbox: sa.Table, inbox: sa.Table, *, older_than: timedelta
) -> tuple[int, int]:
    """Delete outbox rows published, and inbox rows processed, more than ``older_than`` ago.

    An inbox row must outlive every redelivery of its message, so ``older_than``
    is days, not minutes. Returns (outbox rows, inbox rows) deleted.
    """
    published = await conn.execute(
        sa.delete(outbox).where(outbox.c.published_at < sa.func.now() - older_than)
    )
    processed = await conn.execute(
        sa.delete(inbox).where(inbox.c.processed_at < sa.func.now() - older_than)
    )
    return int(published.rowcount), int(processed.rowcount)
