from __future__ import annotations

from datetime import timedelta

import structlog

from users.domain.passwords import normalize_email
from users.domain.secrets import new_token
from users.use_cases.jobs import SEND_PASSWORD_RESET_EMAIL
from users.use_cases.ports import ResetEmailIssuing
from users.use_cases.ports_and_policy import PortsAndPolicy

RESET_EMAIL_WINDOW = timedelta(hours=1)

log = structlog.get_logger(__name__)


async def send_reset_email(
    ports: PortsAndPolicy,
    issuing: ResetEmailIssuing,
    *,
    job_id: str,
    email: str,
    request_id: str | None = None,
) -> bool:
    """Email a single-use reset link for a requested reset; whether one was sent.

    Runs inside the transaction of the reset email job ``job_id``, which the
    job commits once this returns: the job id (its first run) and the token
    row commit only once SMTP has accepted the email, and a refused send
    raises, so both roll back and the job is retried; a second run of a job
    that committed sends nothing. Nothing is sent for an unknown account, nor
    beyond ``reset_emails_per_hour`` for one account: the count is taken under
    a per-user lock, so concurrent requests cannot exceed it. Only the token's
    digest is stored, and neither the token nor the link is logged.
    """
    claim = await issuing.claim(
        job=SEND_PASSWORD_RESET_EMAIL.task_name, job_id=job_id, email=normalize_email(email)
    )
    if not claim.first_run:
        log.info("password_reset_email_already_sent")
        return False
    user = claim.recipient
    if user is None:
        log.info("password_reset_email_skipped", reason="unknown_account")
        return False
    now = ports.clock.now()
    token, token_hash = new_token()
    issued = await issuing.issue_within_budget(
        user.id,
        token_hash,
        now + timedelta(seconds=ports.policy.reset_ttl_seconds),
        since=now - RESET_EMAIL_WINDOW,
        budget=ports.policy.reset_emails_per_hour,
    )
    if not issued:
        log.info("password_reset_email_skipped", reason="hourly_budget_spent", user_id=str(user.id))
        return False
    message = ports.mailer.compose_reset_email(
        full_name=user.full_name, token=token, expires_minutes=ports.policy.reset_ttl_seconds // 60
    )
    await ports.emails.send(
        user.email, message, headers={"X-Request-ID": request_id} if request_id else None
    )
    log.info("password_reset_email_sent", user_id=str(user.id))
    return True
