"""What both users processes build from their settings: the ports every use case is given.

The API (``users.main``) and the worker (``users.worker``) each call
:func:`build_ports`; neither imports the other's composition root.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from emporium_kit.email import EmailSender, EmailTemplates
from emporium_kit.identity.revocations import RevocationList
from users.adapters.access_tokens import JwtIssuer
from users.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from users.adapters.login_throttle import RedisLoginThrottle
from users.adapters.passwords import BcryptHasher
from users.adapters.reset_mailer import ResetEmailComposer
from users.adapters.revocations import RedisRevocations
from users.adapters.signing_keys import SigningKey
from users.settings import UsersSettings
from users.use_cases.ports_and_policy import Policy, PortsAndPolicy

TEMPLATES = Path(__file__).parent / "templates"


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def build_ports(
    settings: UsersSettings, *, engine: AsyncEngine, redis: Redis, key: SigningKey
) -> PortsAndPolicy:
    """What every use case is given, from the settings."""
    return PortsAndPolicy(
        uow=SqlUnitOfWorkFactory(engine, jobs_queue=settings.jobs_queue),
        hasher=BcryptHasher(settings.bcrypt_rounds),
        tokens=JwtIssuer(key, ttl_seconds=settings.access_token_ttl_seconds),
        revocations=RedisRevocations(
            RevocationList(redis, ttl_seconds=settings.access_token_ttl_seconds + 60)
        ),
        throttle=RedisLoginThrottle(redis, settings.rate_limit_login_failures),
        mailer=ResetEmailComposer(EmailTemplates(TEMPLATES), settings.public_web_url),
        emails=EmailSender(settings.smtp),
        clock=SystemClock(),
        policy=Policy(
            refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
            reset_ttl_seconds=settings.password_reset_ttl_seconds,
            reset_emails_per_hour=settings.password_reset_emails_per_hour,
        ),
    )
