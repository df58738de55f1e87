"""Writing events and jobs to the outbox inside the caller's unit of work.

:func:`add_job` writes a job's message as the events are written: the job is
sent if and only if the change committed, and never lost once it did (the
relay publishes it to :data:`~emporium_kit.messaging.broker.JOBS_EXCHANGE`,
at least once). It needs no job library: the service process that enqueues
does not load the worker's.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from emporium_kit.context import current_request_id
from emporium_kit.tracing import current_trace_headers

from .envelope import REQUEST_ID_HEADER, EventEnvelope, JSONValue

JOBS_ENQUEUED = Counter("jobs_enqueued_total", "Jobs sent or written to the outbox", ["job"])


def notify_channel(outbox_table: sa.Table) -> str:
    """The PostgreSQL ``NOTIFY`` channel a write to ``outbox_table`` wakes its relay on.

    Every row written here notifies it in the same statement (``RETURNING
    pg_notify(...)``, no extra round trip); PostgreSQL delivers the notification
    only when the transaction commits, and folds a transaction's repeats into
    one. The relay listens on it, so a committed row is published at once
    instead of at the next poll; the poll stays, for missed notifications.
    """
    return f"emporium_{outbox_table.name}"


def _notify(outbox_table: sa.Table) -> sa.ColumnElement[Any]:
    return sa.func.pg_notify(notify_channel(outbox_table), "")


# The two INSERTs of each outbox table, built once: building a statement costs
# more than executing one whose compiled form SQLAlchemy has cached.
_EVENT_INSERTS: dict[sa.Table, sa.Insert] = {}
_JOB_INSERTS: dict[sa.Table, sa.Insert] = {}


def _event_insert(outbox_table: sa.Table) -> sa.Insert:
    statement = _EVENT_INSERTS.get(outbox_table)
    if statement is None:
        statement = _EVENT_INSERTS[outbox_table] = (
            sa.insert(outbox_table)
            .values(
                id=sa.bindparam("id"),
                routing_key=sa.bindparam("routing_key"),
                payload=sa.bindparam("payload"),
                headers=sa.bindparam("headers"),
                occurred_at=sa.bindparam("occurred_at"),
            )
            .returning(_notify(outbox_table))
        )
    return statement


def _job_insert(outbox_table: sa.Table) -> sa.Insert:
    statement = _JOB_INSERTS.get(outbox_table)
    if statement is None:
        statement = _JOB_INSERTS[outbox_table] = (
            sa.insert(outbox_table)
            .values(
                id=sa.bindparam("id"),
                destination="jobs",
                routing_key=sa.bindparam("routing_key"),
                payload=sa.bindparam("payload"),
                headers=sa.bindparam("headers"),
                occurred_at=sa.func.now(),
            )
            .returning(_notify(outbox_table))
        )
    return statement


@dataclass(frozen=True, slots=True)
class OutboxWrite:
    """One outbox row, built (with the ambient trace context and request id of the
    moment it was asked for) but not written yet: :meth:`execute` writes it on the
    caller's session or connection. A unit of work that has nothing else to write
    can run its one row as a single autocommit statement (atomic by itself)."""

    id: uuid.UUID
    statement: sa.Insert
    parameters: dict[str, Any]
    job: str | None = None

    async def execute(self, session_or_conn: AsyncSession | AsyncConnection) -> uuid.UUID:
        await session_or_conn.execute(self.statement, self.parameters)
        if self.job is not None:
            JOBS_ENQUEUED.labels(job=self.job).inc()
        return self.id


def event_write(
    outbox_table: sa.Table,
    routing_key: str,
    payload: Mapping[str, JSONValue],
    *,
    headers: Mapping[str, str] | None = None,
) -> OutboxWrite:
    """The outbox row of an event (see :func:`add_event`), to execute later."""
    ambient: dict[str, str] = current_trace_headers()
    request_id = current_request_id()
    if request_id is not None:
        ambient[REQUEST_ID_HEADER] = request_id
    envelope = EventEnvelope.new(routing_key, dict(payload), headers={**ambient, **(headers or {})})
    return OutboxWrite(
        id=envelope.id,
        statement=_event_insert(outbox_table),
        parameters={
            "id": envelope.id,
            "routing_key": envelope.type,
            "payload": envelope.payload,
            "headers": envelope.headers,
            "occurred_at": envelope.occurred_at,
        },
    )


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
    write = event_write(outbox_table, routing_key, payload, headers=headers)
    return await write.execute(session_or_conn)


class Job(Protocol):
    """What a declared job (taskiq's decorated task) offers for enqueueing."""

    @property
    def task_name(self) -> str: ...

    @property
    def labels(self) -> dict[str, Any]: ...


def job_write(outbox_table: sa.Table, queue: str, job: Job, /, **kwargs: Any) -> OutboxWrite:
    """The outbox row of a job (see :func:`add_job`), to execute later."""
    job_id = uuid.uuid4()
    labels: dict[str, Any] = {**job.labels, **current_trace_headers()}
    labels.pop("schedule", None)
    request_id = current_request_id()
    if request_id is not None:
        labels[REQUEST_ID_HEADER] = request_id
    # The job library's message (taskiq's TaskiqMessage, as its JSON formatter
    # writes it), built here so that enqueueing needs no job library loaded.
    message: dict[str, Any] = {
        "task_id": job_id.hex,
        "task_name": job.task_name,
        "labels": labels,
        "labels_types": None,
        "args": [],
        "kwargs": kwargs,
    }
    return OutboxWrite(
        id=job_id,
        statement=_job_insert(outbox_table),
        parameters={
            "id": job_id,
            "routing_key": queue,
            "payload": message,
            "headers": current_trace_headers(),
        },
        job=job.task_name,
    )


async def add_job(
    session_or_conn: AsyncSession | AsyncConnection,
    outbox_table: sa.Table,
    queue: str,
    job: Job,
    /,
    **kwargs: Any,
) -> uuid.UUID:
    """Enqueue ``job(**kwargs)`` on the job queue ``queue`` (``job_queue_name(service)``)
    with the caller's transaction; returns the job id.

    ``kwargs`` must be JSON values. The job carries the current trace context and
    request id, so its logs and spans join the request that caused it.
    """
    return await job_write(outbox_table, queue, job, **kwargs).execute(session_or_conn)
