"""What every use case is given: the ports it drives and the policy numbers it enforces.

The composition root builds one :class:`PortsAndPolicy` from the adapters and
the settings; tests build one from the fakes of ``ports.py``.
"""

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
class Policy:
    """The lifetimes and budgets the use cases enforce (from settings)."""

    refresh_ttl_seconds: int
    reset_ttl_seconds: int
    reset_emails_per_hour: int


@dataclass(frozen=True, slots=True)
class PortsAndPolicy:
    uow: UnitOfWorkFactory
    hasher: PasswordHasher
    tokens: AccessTokenIssuer
    revocations: Revocations
    throttle: LoginThrottle
    mailer: ResetMailer
    emails: EmailDelivery
    clock: Clock
    policy: Policy
