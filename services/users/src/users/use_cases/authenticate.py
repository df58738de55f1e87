from __future__ import annotations

from emporium_kit.identity.tokens import Principal
from users.domain.errors import SessionRevoked
from users.domain.model import User
from users.use_cases.ports_and_policy import PortsAndPolicy


async def authenticate(ports: PortsAndPolicy, principal: Principal) -> User:
    """The caller's user, checked against the database, not only the token.

    The gateway already refuses revoked tokens through Redis; this is the
    service's own check (defence in depth, and it holds if Redis lost its keys).
    """
    async with ports.uow(read_only=True) as uow:
        user = await uow.users.get_in_session(principal.user_id, principal.session_id)
    if user is None or user.token_version != principal.token_version:
        raise SessionRevoked
    return user
