from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ops.domain.dead_letters import StoredDeadLetter
from ops.use_cases.ports import OpsPorts


async def list_dead_letters(
    ports: OpsPorts,
    *,
    limit: int,
    after: tuple[datetime, UUID] | None,
    queue: str | None,
) -> list[StoredDeadLetter]:
    """Up to ``limit`` dead letters, newest first, after the ``(received_at, id)`` position."""
    async with ports.uow(read_only=True) as uow:
        return await uow.dead_letters.page(limit=limit, after=after, queue=queue)
