from __future__ import annotations

from uuid import UUID

from users.domain.errors import SessionNotFound
from users.use_cases.ports_and_policy import PortsAndPolicy


async def delete_session(ports: PortsAndPolicy, *, user_id: UUID, session_id: UUID) -> None:
    """End one of the user's active sessions; its access tokens stop working at once.

    Someone else's session is as unknown as one that never existed.
    """
    async with ports.uow() as uow:
        session = await uow.sessions.get(session_id)
        if (
            session is None
            or session.user_id != user_id
            or not session.is_active(ports.clock.now())
        ):
            raise SessionNotFound
        await uow.sessions.revoke(session_id, "deleted")
        await uow.commit()
    await ports.revocations.revoke_sessions([session_id])
