from __future__ import annotations

from datetime import timedelta

from users.domain.errors import ResetTokenInvalid
from users.domain.passwords import normalize_email
from users.domain.secrets import MAX_TOKEN_LENGTH, digest, new_token
from users.use_cases.deps import IdentityDeps

PASSWORD_CHANGED = "users.user_password_changed.v1"  # noqa: S105 - a routing key


async def request_password_reset(deps: IdentityDeps, *, email: str) -> None:
    """Email a single-use reset link when the account exists; silent otherwise.

    The email is queued in the mail outbox in the same transaction as the token
    and sent by the outbox sender, so the 202 does not wait for SMTP (its timing
    says nothing about the account) and a crash loses no email.
    """
    async with deps.uow() as uow:
        credentials = await uow.users.credentials_by_email(normalize_email(email))
        if credentials is None:
            return
        token, token_hash = new_token()
        await uow.reset_tokens.add(
            credentials.user.id,
            token_hash,
            deps.clock.now() + timedelta(seconds=deps.reset_ttl_seconds),
        )
        # The email commits with the token: neither exists without the other.
        message = deps.mailer.compose_reset_email(
            full_name=credentials.user.full_name,
            token=token,
            expires_minutes=deps.reset_ttl_seconds // 60,
        )
        await uow.queue_email(credentials.user.email, message)
        await uow.commit()


async def confirm_password_reset(deps: IdentityDeps, *, token: str, new_password: str) -> None:
    """Set the new password, end every session and invalidate every access token."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise ResetTokenInvalid
    password_hash = await deps.hasher.hash(new_password)
    async with deps.uow() as uow:
        user_id = await uow.reset_tokens.consume(digest(token))
        if user_id is None:
            raise ResetTokenInvalid
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
