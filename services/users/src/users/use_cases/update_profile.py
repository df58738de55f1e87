from __future__ import annotations

from uuid import UUID

from users.domain.model import User
from users.use_cases.ports_and_policy import PortsAndPolicy


async def update_profile(
    ports: PortsAndPolicy, user_id: UUID, changes: dict[str, str | None]
) -> User:
    """Change the profile fields named in ``changes`` (a None clears one)."""
    async with ports.uow() as uow:
        user = await uow.users.update_profile(user_id, changes)
        await uow.commit()
    return user
