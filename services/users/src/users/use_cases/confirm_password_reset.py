from __future__ import annotations

from users.domain.errors import ResetTokenInvalid
from users.domain.secrets import MAX_TOKEN_LENGTH, digest
from users.use_cases.ports_and_policy import PortsAndPolicy

PASSWORD_CHANGED = "users.user_password_changed.v1"  # noqa: S105 - a routing key


async def confirm_password_reset(ports: PortsAndPolicy, *, token: str, new_password: str) -> None:
    """Set the new password, end every session and every other reset token of the user,
    and invalidate every access token.

    A token that cannot work is refused before bcrypt runs, so a flood of forged
    tokens costs a lookup each, not a hash. Using it is still the conditional
    UPDATE that decides, after the hash: two confirmations cannot both win.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise ResetTokenInvalid
    token_hash = digest(token)
    async with ports.uow(read_only=True) as uow:
        if not await uow.reset_tokens.is_usable(token_hash):
            raise ResetTokenInvalid
    password_hash = await ports.hasher.hash(new_password)
    async with ports.uow() as uow:
        user_id = await uow.reset_tokens.consume(token_hash)
        if user_id is None:
            raise ResetTokenInvalid
        await uow.reset_tokens.revoke_all(user_id)
        version = await uow.users.set_password(user_id, password_hash)
        revoked = await uow.sessions.revoke_all(user_id, "password_reset")
        await uow.add_event(
            PASSWORD_CHANGED,
            {
                "user_id": str(user_id),
                "changed_at": ports.clock.now().isoformat(),
                "reason": "reset",
            },
        )
        await uow.commit()
    await ports.revocations.revoke_sessions(revoked)
    await ports.revocations.require_token_version(user_id, version)
