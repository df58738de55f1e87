"""Recording, with a job's effect, that the job ran: its effect happens once per job id."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession


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
