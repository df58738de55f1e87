"""What every identity use case is given: its ports and its policy numbers."""

from __future__ import annotations

from dataclasses import dataclass

from users.use_cases.ports import (
    AccessTokenIssuer,
    Clock,
    EmailDelivery,
    LoginThrottle,
    PasswordHasher,
    ResetMailer,
    Revocations,
    UnitOfWorkFactory,
)


@dataclass(frozen=True, slots=True)
class IdentityDeps:
    uow: UnitOfWorkFactory
    hasher: PasswordHasher
    tokens: AccessTokenIssuer
    revocations: Revocations
    throttle: LoginThrottle
    mailer: ResetMailer
    emails: EmailDelivery
    clock: Clock
    refresh_ttl_seconds: int
    reset_ttl_seconds: int
    reset_emails_per_hour: int
