from __future__ import annotations

from datetime import timedelta

import structlog

from users.domain.passwords import normalize_email
from users.domain.secrets import new_token
from users.use_cases.ports import UnitOfWork
from users.use_cases.ports_and_policy import PortsAndPolicy

RESET_EMAIL_WINDOW = timedelta(hours=1)

log = structlog.get_logger(__name__)


async def send_reset_email(
    ports: PortsAndPolicy, uow: UnitOfWork, *, email: str, request_id: str | None = None
) -> bool:
    """Email a single-use reset link for a requested reset; whether one was sent.

    Runs inside a transaction the caller commits (the reset email job, with
    its job id in the inbox): the token row commits only once SMTP has
    accepted the email, and a refused send raises, so both roll back and the
    job is retried. Nothing is sent for an unknown account, nor beyond
    ``reset_emails_per_hour`` for one account: the count is taken under a
    per-user lock, so concurrent requests cannot exceed it. Only the token's
    digest is stored, and neither the token nor the link is logged.
    """
    credentials = await uow.users.credentials_by_email(normalize_email(email))
    if credentials is None:
        log.info("password_reset_email_skipped", reason="unknown_account")
        return False
    user = credentials.user
    now = ports.clock.now()
    issued = await uow.reset_tokens.lock_and_count_issued(user.id, now - RESET_EMAIL_WINDOW)
    if issued >= ports.policy.reset_emails_per_hour:
        log.info("password_reset_email_skipped", reason="hourly_budget_spent", user_id=str(user.id))
        return False
    token, token_hash = new_token()
    await uow.reset_tokens.add(
        user.id, token_hash, now + timedelta(seconds=ports.policy.reset_ttl_seconds)
    )
    message = ports.mailer.compose_reset_email(
        full_name=user.full_name, token=token, expires_minutes=ports.policy.reset_ttl_seconds // 60
    )
    await ports.emails.send(
        user.email, message, headers={"X-Request-ID": request_id} if request_id else None
    )
    log.info("password_reset_email_sent", user_id=str(user.id))
    return True
