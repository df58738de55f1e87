from __future__ import annotations

from users.domain.errors import ResetTokenInvalid
from users.domain.passwords import normalize_email
from users.domain.secrets import MAX_TOKEN_LENGTH, digest
from users.use_cases.deps import IdentityDeps

PASSWORD_RESET_REQUESTED = "users.password_reset_requested.v1"  # noqa: S105 - a routing key
PASSWORD_CHANGED = "users.user_password_changed.v1"  # noqa: S105 - a routing key


async def request_password_reset(deps: IdentityDeps, *, email: str) -> None:
    """Record that a reset was asked for; the reset mailer does the rest.

    The request writes one outbox row whether or not the account exists, and
    nothing else, so neither the 202 nor its timing says which emails are
    registered. The account lookup, the hourly budget, the token and the email
    happen in the users process's consumer of this event
    (``use_cases.send_reset_email``), off the request path.
    """
    async with deps.uow() as uow:
        await uow.add_event(
            PASSWORD_RESET_REQUESTED,
            {"email": normalize_email(email), "requested_at": deps.clock.now().isoformat()},
        )
        await uow.commit()


async def confirm_password_reset(deps: IdentityDeps, *, token: str, new_password: str) -> None:
    """Set the new password, end every session and every other reset token of the user,
    and invalidate every access token.

    A token that cannot work is refused before bcrypt runs, so a flood of forged
    tokens costs a lookup each, not a hash. Using it is still the conditional
    UPDATE that decides, after the hash: two confirmations cannot both win.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise ResetTokenInvalid
    token_hash = digest(token)
    async with deps.uow(read_only=True) as uow:
        if not await uow.reset_tokens.is_usable(token_hash):
            raise ResetTokenInvalid
    password_hash = await deps.hasher.hash(new_password)
    async with deps.uow() as uow:
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
                "changed_at": deps.clock.now().isoformat(),
                "reason": "reset",
            },
        )
        await uow.commit()
    await deps.revocations.revoke_sessions(revoked)
    await deps.revocations.require_token_version(user_id, version)
