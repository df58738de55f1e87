from __future__ import annotations

from users.domain.errors import RefreshTokenInvalid, RefreshTokenReused
from users.domain.model import TokenPair
from users.domain.secrets import MAX_TOKEN_LENGTH, digest
from users.use_cases.ports_and_policy import PortsAndPolicy
from users.use_cases.token_pair import issue_pair

REUSE_REASON = "refresh_token_reused"


async def refresh_session(ports: PortsAndPolicy, *, refresh_token: str) -> TokenPair:
    """Exchange a refresh token, once, for a new pair in the same session.

    Marking the token used is one conditional UPDATE, so two concurrent
    refreshes with the same token cannot both succeed. A token that was already
    used means it leaked (or a client raced itself): the whole family is
    revoked, and its access tokens are refused by the gateway at once.
    """
    if len(refresh_token) > MAX_TOKEN_LENGTH:
        raise RefreshTokenInvalid
    token_hash = digest(refresh_token)
    now = ports.clock.now()
    async with ports.uow() as uow:
        session_id = await uow.sessions.use_refresh_token(token_hash)
        if session_id is None:
            reused_in = await uow.sessions.refresh_token_session(token_hash)
            if reused_in is None:
                raise RefreshTokenInvalid
            revoked = await uow.sessions.revoke(reused_in, REUSE_REASON)
            await uow.commit()
            if revoked:
                await ports.revocations.revoke_sessions([reused_in])
            raise RefreshTokenReused
        session = await uow.sessions.get(session_id)
        if session is None or not session.is_active(now):
            raise RefreshTokenInvalid
        user = await uow.users.get(session.user_id)
        if user is None:
            raise RefreshTokenInvalid
        await uow.sessions.touch(session_id)
        pair = await issue_pair(ports, uow, user, session_id)
        await uow.commit()
    return pair
