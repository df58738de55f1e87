from __future__ import annotations

from uuid import UUID

from users.domain.errors import RefreshTokenInvalid, SessionNotFound
from users.domain.model import Session
from users.domain.secrets import digest, is_token_shaped
from users.use_cases.deps import IdentityDeps


async def log_out(deps: IdentityDeps, *, refresh_token: str) -> None:
    """Revoke the session the refresh token belongs to; unknown tokens are a no-op.

    Answering 204 either way tells a caller nothing about which tokens exist. A
    string that no refresh token looks like (an access token, say) is refused as
    refresh does: the shape is public, and the client learns its logout failed.
    """
    if not is_token_shaped(refresh_token):
        raise RefreshTokenInvalid
    async with deps.uow() as uow:
        session_id = await uow.sessions.refresh_token_session(digest(refresh_token))
        if session_id is None:
            return
        revoked = await uow.sessions.revoke(session_id, "logout")
        await uow.commit()
    if revoked:
        await deps.revocations.revoke_sessions([session_id])


async def list_sessions(deps: IdentityDeps, *, user_id: UUID) -> list[Session]:
    async with deps.uow(read_only=True) as uow:
        return await uow.sessions.active_for_user(user_id)


async def delete_session(deps: IdentityDeps, *, user_id: UUID, session_id: UUID) -> None:
    async with deps.uow() as uow:
        session = await uow.sessions.get(session_id)
        if session is None or session.user_id != user_id or not session.is_active(deps.clock.now()):
            raise SessionNotFound
        await uow.sessions.revoke(session_id, "deleted")
        await uow.commit()
    await deps.revocations.revoke_sessions([session_id])
