"""Enqueueing a job with the database change that causes it: through the transactional outbox.

:func:`add_job` writes the job's message into the service's outbox, in the
caller's transaction, as the events are written: the job is sent if and only
if the change committed, and never lost once it did (the relay publishes it
to :data:`~emporium_kit.messaging.broker.JOBS_EXCHANGE`, at least once).
:func:`first_run` is how a job makes its effect happen once: it records the
job's id in the service's inbox in the same transaction as the effect.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from taskiq import TaskiqMessage

from emporium_kit.context import current_request_id
from emporium_kit.messaging.envelope import REQUEST_ID_HEADER
from emporium_kit.tracing import current_trace_headers

from .observability import JOBS_ENQUEUED


class Job(Protocol):
    """What a declared job (taskiq's decorated task) offers for enqueueing."""

    @property
    def task_name(self) -> str: ...

    @property
    def labels(self) -> dict[str, Any]: ...


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
    job_id = uuid.uuid4()
    labels: dict[str, Any] = {**job.labels, **current_trace_headers()}
    labels.pop("schedule", None)
    request_id = current_request_id()
    if request_id is not None:
        labels[REQUEST_ID_HEADER] = request_id
    message = TaskiqMessage(
        task_id=job_id.hex,
        task_name=job.task_name,
        labels=labels,
        labels_types=None,
        args=[],
        kwargs=kwargs,
    )
    await session_or_conn.execute(
        sa.insert(outbox_table).values(
            id=job_id,
            destination="jobs",
            routing_key=queue,
            payload=message.model_dump(mode="json"),
            headers=current_trace_headers(),
            occurred_at=sa.func.now(),
        )
    )
    JOBS_ENQUEUED.labels(job=job.task_name).inc()
    return job_id


async def first_run(
    session: AsyncSession | AsyncConnection, inbox_table: sa.Table, *, job: str, job_id: str
) -> bool:
    """Record that ``job_id`` ran, in the caller's transaction; False if it already had.

    The job does its effect only when this returns True, and commits the two
    together: a second delivery (a redelivery after a crash, a replay) then
    changes nothing.
    """
    inserted = await session.execute(
        pg_insert(inbox_table)
        .values(consumer=job, message_id=uuid.UUID(job_id))
        .on_conflict_do_nothing()
        .returning(inbox_table.c.message_id)
    )
    return inserted.first() is not None
