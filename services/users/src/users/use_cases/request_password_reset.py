from __future__ import annotations

from users.domain.passwords import normalize_email
from users.use_cases.jobs import SEND_PASSWORD_RESET_EMAIL
from users.use_cases.ports_and_policy import PortsAndPolicy


async def request_password_reset(ports: PortsAndPolicy, *, email: str) -> None:
    """Record that a reset was asked for; the reset email job does the rest.

    The request enqueues one job (an outbox row) whether or not the account
    exists, and nothing else, so neither the 202 nor its timing says which
    emails are registered. The account lookup, the hourly budget, the token
    and the email happen in the users worker (``use_cases.send_reset_email``),
    off the request path, retried while SMTP is down.
    """
    async with ports.uow() as uow:
        await uow.add_job(
            SEND_PASSWORD_RESET_EMAIL,
            email=normalize_email(email),
            requested_at=ports.clock.now().isoformat(),
        )
        await uow.commit()
