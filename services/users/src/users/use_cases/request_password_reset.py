from __future__ import annotations

from users.domain.passwords import normalize_email
from users.use_cases.ports_and_policy import PortsAndPolicy

PASSWORD_RESET_REQUESTED = "users.password_reset_requested.v1"  # noqa: S105 - a routing key


async def request_password_reset(ports: PortsAndPolicy, *, email: str) -> None:
    """Record that a reset was asked for; the reset mailer does the rest.

    The request writes one outbox row whether or not the account exists, and
    nothing else, so neither the 202 nor its timing says which emails are
    registered. The account lookup, the hourly budget, the token and the email
    happen in the users process's consumer of this event
    (``use_cases.send_reset_email``), off the request path.
    """
    async with ports.uow() as uow:
        await uow.add_event(
            PASSWORD_RESET_REQUESTED,
            {"email": normalize_email(email), "requested_at": ports.clock.now().isoformat()},
        )
        await uow.commit()
