from __future__ import annotations

from users.domain.errors import RefreshTokenInvalid
from users.domain.secrets import digest, is_token_shaped
from users.use_cases.ports_and_policy import PortsAndPolicy


async def log_out(ports: PortsAndPolicy, *, refresh_token: str) -> None:
    """Revoke the session the refresh token belongs to; unknown tokens are a no-op.

    Answering 204 either way tells a caller nothing about which tokens exist. A
    string that no refresh token looks like (an access token, say) is refused as
    refresh does: the shape is public, and the client learns its logout failed.
    """
    if not is_token_shaped(refresh_token):
        raise RefreshTokenInvalid
    async with ports.uow() as uow:
        session_id = await uow.sessions.refresh_token_session(digest(refresh_token))
        if session_id is None:
            return
        revoked = await uow.sessions.revoke(session_id, "logout")
        await uow.commit()
    if revoked:
        await ports.revocations.revoke_sessions([session_id])
