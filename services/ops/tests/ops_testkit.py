"""The ops service's test doubles: the testkit's signing key with an admin token, its JWKS
stand-in, and dead letters such as the kit's consumers publish."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from emporium_kit.messaging.dead_letters import DeadLetter
from emporium_testkit.identity import JwksStandIn
from emporium_testkit.identity import SigningKey as _SigningKey

__all__ = ["OPS_ADMIN", "JwksStandIn", "SigningKey", "dead_letter"]

OPS_ADMIN = "ops:admin"


class SigningKey(_SigningKey):
    def admin_headers(self) -> dict[str, str]:
        return self.headers(permissions=[OPS_ADMIN], roles=["customer", "admin"])


def dead_letter(
    *,
    queue: str,
    body: bytes = b'{"order_id": "8d9e0c1a-6f6b-4f55-9a47-0c2b8a7f1e11"}',
    headers: dict[str, Any] | None = None,
    kind: str = "event",
    name: str = "orders.order_placed.v1",
    service: str = "orders",
    message_id: str | None = None,
    attempts: int = 5,
    error: str = "TimeoutError: the payment provider did not answer",
) -> DeadLetter:
    """A dead letter such as the kit's consumer publishes when it gives up."""
    first = datetime.now(UTC) - timedelta(minutes=3)
    letter = DeadLetter.of(
        service=service,
        queue=queue,
        kind="job" if kind == "job" else "event",
        name=name,
        message_id=message_id or str(uuid.uuid4()),
        body=body,
        headers=headers if headers is not None else {"x-request-id": "req-1234"},
        attempts=attempts,
        first_failed_at=first,
        error=error,
    )
    return letter
