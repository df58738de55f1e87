"""The reset mailer: emails the link for each ``users.password_reset_requested.v1``.

It runs on the kit's idempotent ``EventConsumer`` (inbox-deduplicated, a quorum
queue with a delivery limit and a dead-letter queue), in the users process.
The use case runs in the consumer's transaction: a refused email raises, the
transaction (token and inbox row) rolls back and the message is delivered
again, until the queue's delivery limit sends it to the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from emporium_kit.messaging import EventEnvelope
from emporium_kit.messaging.consumer import EventHandler
from users.use_cases.ports import UnitOfWork
from users.use_cases.ports_and_policy import PortsAndPolicy
from users.use_cases.send_reset_email import send_reset_email

CONSUMER_NAME = "users.password-reset-mailer"


class PasswordResetRequested(BaseModel):
    """The fields this consumer needs; the producer may add others."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # Whatever was asked for, normalised: possibly not an address at all.
    email: str = Field(max_length=4096)
    requested_at: AwareDatetime


def reset_mail_handler(
    ports: PortsAndPolicy, unit_of_work: Callable[[AsyncSession], UnitOfWork]
) -> EventHandler:
    """The handler; ``unit_of_work`` opens the repositories on the consumer's session."""

    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        event = PasswordResetRequested.model_validate(envelope.payload)
        await send_reset_email(
            ports, unit_of_work(session), email=event.email, request_id=envelope.request_id
        )

    return handle
