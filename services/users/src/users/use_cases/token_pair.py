"""The token pair a login or a refresh hands out, issued inside their unit of work."""

from __future__ import annotations

from uuid import UUID

from users.domain.model import TokenPair, User
from users.domain.secrets import new_token
from users.use_cases.ports import UnitOfWork
from users.use_cases.ports_and_policy import PortsAndPolicy


async def issue_pair(
    ports: PortsAndPolicy, uow: UnitOfWork, user: User, session_id: UUID
) -> TokenPair:
    """A fresh access token and the next refresh token of ``session_id``'s family.

    The refresh token is stored in ``uow``: it exists only if the caller commits.
    """
    refresh_token, refresh_hash = new_token()
    await uow.sessions.add_refresh_token(session_id, refresh_hash)
    permissions = await uow.users.permissions_of(user.roles)
    access_token = ports.tokens.issue(user=user, session_id=session_id, permissions=permissions)
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=ports.tokens.ttl_seconds,
    )
