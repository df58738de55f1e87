from __future__ import annotations

from datetime import datetime
from uuid import UUID

from users.domain.model import User
from users.use_cases.ports_and_policy import PortsAndPolicy


async def list_users(
    ports: PortsAndPolicy,
    *,
    limit: int,
    after: tuple[datetime, UUID] | None,
    email: str | None,
) -> list[User]:
    """Up to ``limit`` users, newest first, after the ``(created_at, id)`` position."""
    async with ports.uow(read_only=True) as uow:
        return await uow.users.page(limit=limit, after=after, email=email)
