"""What the users worker runs for each job kind (``use_cases.jobs``), wired to its adapters.

Each job is idempotent: the reset email records its job id in the inbox in
the transaction that stores the token (the first of its two statements), so a
redelivery (a worker killed mid-job, a replay) sends nothing more once one run
committed; the clean-ups delete by age, so a second run finds nothing left to
delete. The reset email runs on a plain connection (SQLAlchemy Core, no ORM
session): BEGIN, two statements, COMMIT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, Context, TaskiqDepends

from emporium_kit.messaging.envelope import REQUEST_ID_HEADER
from users.adapters.db.cleanup import delete_expired_credentials, prune_outbox_and_inbox
from users.adapters.db.repositories import SqlResetEmailIssuing
from users.use_cases.jobs import (
    DELETE_EXPIRED_CREDENTIALS,
    PRUNE_OUTBOX_AND_INBOX,
    SEND_PASSWORD_RESET_EMAIL,
)
from users.use_cases.ports_and_policy import PortsAndPolicy
from users.use_cases.send_reset_email import send_reset_email

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerComponents:
    """What the jobs are given, built by the worker's composition root at start-up."""

    ports: PortsAndPolicy
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    prune_after: timedelta


@dataclass(frozen=True, slots=True)
class UsersJobs:
    send_password_reset_email: AsyncTaskiqDecoratedTask[Any, Any]
    delete_expired_credentials: AsyncTaskiqDecoratedTask[Any, Any]
    prune_outbox_and_inbox: AsyncTaskiqDecoratedTask[Any, Any]


def declare_jobs(
    broker: AsyncBroker, components: Callable[[], WorkerComponents], *, cleanup_every: int
) -> UsersJobs:
    """Declare every users job on ``broker``; ``components`` gives them their parts."""

    async def send_password_reset_email(
        email: str, requested_at: str, context: Context = TaskiqDepends()
    ) -> None:
        parts = components()
        request_id = context.message.labels.get(REQUEST_ID_HEADER)
        async with parts.engine.connect() as connection, connection.begin():
            # SMTP accepts the email before the token and the job id commit; a
            # refusal raises and rolls both back, and the job is retried.
            await send_reset_email(
                parts.ports,
                SqlResetEmailIssuing(connection),
                job_id=context.message.task_id,
                email=email,
                request_id=request_id if isinstance(request_id, str) else None,
            )

    async def delete_expired() -> None:
        sessions, tokens = await delete_expired_credentials(
            components().engine, now=datetime.now(UTC)
        )
        log.info("expired_credentials_deleted", sessions=sessions, reset_tokens=tokens)

    async def prune_messages() -> None:
        parts = components()
        outbox_rows, inbox_rows = await prune_outbox_and_inbox(
            parts.engine, older_than=parts.prune_after
        )
        log.info("messages_pruned", outbox=outbox_rows, inbox=inbox_rows)

    def every(schedule_id: str) -> list[dict[str, Any]]:
        return [{"interval": cleanup_every, "schedule_id": schedule_id}]

    return UsersJobs(
        send_password_reset_email=broker.task(
            task_name=SEND_PASSWORD_RESET_EMAIL.task_name, **SEND_PASSWORD_RESET_EMAIL.labels
        )(send_password_reset_email),
        delete_expired_credentials=broker.task(
            task_name=DELETE_EXPIRED_CREDENTIALS.task_name,
            schedule=every("users.delete-expired-credentials"),
            **DELETE_EXPIRED_CREDENTIALS.labels,
        )(delete_expired),
        prune_outbox_and_inbox=broker.task(
            task_name=PRUNE_OUTBOX_AND_INBOX.task_name,
            schedule=every("users.prune-outbox-and-inbox"),
            **PRUNE_OUTBOX_AND_INBOX.labels,
        )(prune_messages),
    )
