"""Identity entities as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    email: str
    full_name: str
    phone: str | None
    roles: tuple[str, ...]
    created_at: datetime
    token_version: int = 1


@dataclass(frozen=True, slots=True)
class Credentials:
    user: User
    password_hash: str


@dataclass(frozen=True, slots=True)
class Session:
    """One login: the family of refresh tokens it issued."""

    id: UUID
    user_id: UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    revoked_at: datetime | None = None

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = field(default="bearer")


@dataclass(frozen=True, slots=True)
class LoginLockout:
    """An account whose login-attempt budget (``limit`` per window) is spent for now."""

    limit: int
    retry_after: int


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a login came from, kept on its session."""

    user_agent: str | None
    ip: str | None
