"""Writing events to the outbox inside the caller's unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from emporium_kit.context import current_request_id
from emporium_kit.tracing import current_trace_headers

from .envelope import REQUEST_ID_HEADER, EventEnvelope, JSONValue


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
    event is published if and only if its transaction committed. The row keeps the
    current trace context (``traceparent``, ``tracestate``) and request id, so the
    relay's publish and every consumer continue the trace of the request that
    caused it; ``headers`` adds to or overrides them. Returns the event's message id.
    """
    ambient: dict[str, str] = current_trace_headers()
    request_id = current_request_id()
    if request_id is not None:
        ambient[REQUEST_ID_HEADER] = request_id
    envelope = EventEnvelope.new(routing_key, dict(payload), headers={**ambient, **(headers or {})})
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
