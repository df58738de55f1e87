"""The dead-letter repository on SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ops.adapters.db.tables import dead_letters
from ops.domain.dead_letters import IncomingDeadLetter, StoredDeadLetter

_COLUMNS = tuple(dead_letters.c)


def _text(value: str) -> str:
    # PostgreSQL stores no NUL in text or jsonb strings; a producer's NUL must not
    # make a dead letter unstorable (it would be retried forever).
    return value.replace("\x00", "\ufffd")


def _json(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Mapping):
        return {_text(str(key)): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, float) and value != value:  # NaN is no JSON
        return None
    return value


def _stored(row: Any) -> StoredDeadLetter:
    return StoredDeadLetter(
        id=row.id,
        service=row.service,
        queue=row.queue,
        kind=row.kind,
        name=row.name,
        message_id=row.message_id,
        body=bytes(row.body),
        headers=dict(row.headers),
        attempts=row.attempts,
        first_failed_at=row.first_failed_at,
        last_failed_at=row.last_failed_at,
        last_error=row.last_error,
        received_at=row.received_at,
        replayed_at=row.replayed_at,
        replay_count=row.replay_count,
    )


class SqlDeadLetterRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add(self, letter: IncomingDeadLetter) -> bool:
        inserted = await self._c.execute(
            pg_insert(dead_letters)
            .values(
                id=letter.id,
                service=_text(letter.service),
                queue=_text(letter.queue),
                kind=letter.kind,
                name=_text(letter.name),
                message_id=_text(letter.message_id),
                body=letter.body,
                headers=_json(letter.headers),
                attempts=letter.attempts,
                first_failed_at=letter.first_failed_at,
                last_failed_at=letter.last_failed_at,
                last_error=_text(letter.last_error),
            )
            .on_conflict_do_nothing(index_elements=[dead_letters.c.id])
            .returning(dead_letters.c.id)
        )
        return inserted.first() is not None

    async def get(self, letter_id: UUID) -> StoredDeadLetter | None:
        row = (
            await self._c.execute(sa.select(*_COLUMNS).where(dead_letters.c.id == letter_id))
        ).first()
        return _stored(row) if row is not None else None

    async def mark_replayed(self, letter_id: UUID) -> StoredDeadLetter | None:
        row = (
            await self._c.execute(
                sa.update(dead_letters)
                .where(dead_letters.c.id == letter_id, dead_letters.c.replayed_at.is_(None))
                .values(replayed_at=sa.func.now(), replay_count=dead_letters.c.replay_count + 1)
                .returning(*_COLUMNS)
            )
        ).first()
        return _stored(row) if row is not None else None

    async def page(
        self, *, limit: int, after: tuple[datetime, UUID] | None, queue: str | None
    ) -> list[StoredDeadLetter]:
        rows = (await self._c.execute(page_query(limit=limit, after=after, queue=queue))).all()
        return [_stored(row) for row in rows]


def page_query(
    *, limit: int, after: tuple[datetime, UUID] | None, queue: str | None
) -> sa.Select[Any]:
    """The listing: newest first, keyset after ``(received_at, id)``. Served by
    ``ix_dead_letters_received_at_id``, or with ``queue`` by
    ``ix_dead_letters_queue_received_at_id`` (tests/integration check the plans)."""
    query = sa.select(*_COLUMNS).order_by(
        dead_letters.c.received_at.desc(), dead_letters.c.id.desc()
    )
    if queue is not None:
        query = query.where(dead_letters.c.queue == queue)
    if after is not None:
        query = query.where(
            sa.tuple_(dead_letters.c.received_at, dead_letters.c.id) < sa.tuple_(*after)
        )
    return query.limit(limit)
