from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from users.domain.errors import UserNotFound
from users.domain.model import User
from users.domain.roles import ADMIN, RoleChange
from users.use_cases.ports_and_policy import PortsAndPolicy


async def change_roles(ports: PortsAndPolicy, user_id: UUID, roles: Sequence[str]) -> User:
    """Replace a user's roles; their current access tokens stop working at once.

    The domain decides (``RoleChange``); this loads the facts it decides on,
    holds the lock they are read under, and saves what it allowed.
    """
    async with ports.uow() as uow:
        change = RoleChange.requested(user_id, roles, known_roles=await uow.users.known_roles())
        if await uow.users.get(user_id) is None:
            raise UserNotFound
        # Locked until commit: a concurrent role change waits here, then sees
        # the admins as this one left them.
        admins = await uow.users.lock_role_holders(ADMIN)
        change.ensure_an_admin_remains(admins)
        version = await uow.users.set_roles(user_id, change.roles)
        updated = await uow.users.get(user_id)
        await uow.commit()
    assert updated is not None
    await ports.revocations.require_token_version(user_id, version)
    return updated
