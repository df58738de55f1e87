from __future__ import annotations

from uuid import UUID

from users.domain.model import Session
from users.use_cases.ports_and_policy import PortsAndPolicy


async def list_sessions(ports: PortsAndPolicy, *, user_id: UUID) -> list[Session]:
    """The user's sessions that are neither revoked nor expired."""
    async with ports.uow(read_only=True) as uow:
        return await uow.sessions.active_for_user(user_id)
