"""Profile and administration use cases (thin: rules live in the domain)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from users.domain.errors import UnknownRole, UserNotFound
from users.domain.model import User
from users.domain.roles import ADMIN, ensure_an_admin_remains, with_base_role
from users.use_cases.deps import IdentityDeps


async def get_user(deps: IdentityDeps, user_id: UUID) -> User:
    async with deps.uow(read_only=True) as uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise UserNotFound
    return user


async def update_profile(deps: IdentityDeps, user_id: UUID, changes: dict[str, str | None]) -> User:
    async with deps.uow() as uow:
        user = await uow.users.update_profile(user_id, changes)
        await uow.commit()
    return user


async def list_users(
    deps: IdentityDeps,
    *,
    limit: int,
    after: tuple[datetime, UUID] | None,
    email: str | None,
) -> list[User]:
    async with deps.uow(read_only=True) as uow:
        return await uow.users.page(limit=limit, after=after, email=email)


async def set_roles(deps: IdentityDeps, user_id: UUID, roles: Sequence[str]) -> User:
    """Replace a user's roles; their current access tokens stop working at once."""
    wanted = with_base_role(list(roles))
    async with deps.uow() as uow:
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
    await deps.revocations.require_token_version(user_id, version)
    return updated
