"""Writing events to the outbox inside the caller's unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from .envelope import EventEnvelope, JSONValue


async def add_event(
    session_or_conn: AsyncSession | AsyncConnection,
    outbox_table: sa.Table,
    routing_key: str,
    payload: Mapping[str, JSONValue],
    *,
    headers: Mapping[str, str] | None = None,
) -> uuid.UUID:
    """Record an event in the outbox, in the caller's current transaction.

    The row commits with the state change it describes, and a rollback drops it: an
    event is published if and only if its transaction committed. ``headers`` is where
    the caller passes ``x-request-id`` and ``traceparent`` (nothing is read from
    ambient context here, so what travels with the event is visible at the call site).
    Returns the event's message id.
    """
    envelope = EventEnvelope.new(routing_key, dict(payload), headers=dict(headers or {}))
    await session_or_conn.execute(
        sa.insert(outbox_table).values(
            id=envelope.id,
            routing_key=envelope.type,
            payload=envelope.payload,
            headers=envelope.headers,
            occurred_at=envelope.occurred_at,
        )
    )
    return envelope.id
