from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from users.domain.errors import UnknownRole, UserNotFound
from users.domain.model import User
from users.domain.roles import ADMIN, ensure_an_admin_remains, with_base_role
from users.use_cases.ports_and_policy import PortsAndPolicy


async def change_roles(ports: PortsAndPolicy, user_id: UUID, roles: Sequence[str]) -> User:
    """Replace a user's roles; their current access tokens stop working at once."""
    wanted = with_base_role(list(roles))
    async with ports.uow() as uow:
        unknown = set(wanted) - await uow.users.known_roles()
        if unknown:
            raise UnknownRole(sorted(unknown))
        if await uow.users.get(user_id) is None:
            raise UserNotFound
        # Locked until commit: a concurrent role change waits here, then sees
        # the admins as this one left them.
        admins = await uow.users.lock_role_holders(ADMIN)
        ensure_an_admin_remains(admins, user_id, wanted)
        version = await uow.users.set_roles(user_id, wanted)
        updated = await uow.users.get(user_id)
        await uow.commit()
    assert updated is not None
    await ports.revocations.require_token_version(user_id, version)
    return updated
