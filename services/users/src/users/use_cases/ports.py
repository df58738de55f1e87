"""The ports the use cases need; adapters implement them, tests fake them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self
from uuid import UUID

from emporium_kit.email import RenderedEmail
from users.domain.model import ClientInfo, Credentials, LoginLockout, Session, User
from users.use_cases.jobs import JobKind


class UserRepository(Protocol):
    async def add(
        self, *, email: str, password_hash: str, full_name: str, roles: Sequence[str]
    ) -> User | None:
        """The new user, or None when the email is taken."""

    async def get(self, user_id: UUID) -> User | None: ...

    async def get_in_session(self, user_id: UUID, session_id: UUID) -> User | None:
        """The user, only while ``session_id`` is one of their active sessions."""

    async def credentials_by_email(self, email: str) -> Credentials | None: ...

    async def update_profile(self, user_id: UUID, changes: dict[str, str | None]) -> User: ...

    async def set_password(self, user_id: UUID, password_hash: str) -> int:
        """Store the hash and bump the token version; returns the new version."""

    async def set_roles(self, user_id: UUID, roles: Sequence[str]) -> int:
        """Replace the roles and bump the token version; returns the new version."""

    async def known_roles(self) -> set[str]: ...

    async def lock_role_holders(self, role: str) -> frozenset[UUID]:
        """The users holding ``role``, locked until the unit of work ends.

        Role changes that read them queue behind each other, so a rule over
        the holders (an admin remains) is decided on what the previous change
        committed.
        """

    async def permissions_of(self, roles: Sequence[str]) -> list[str]: ...

    async def page(
        self, *, limit: int, after: tuple[datetime, UUID] | None, email: str | None
    ) -> list[User]: ...


class SessionRepository(Protocol):
    async def start(
        self, *, user_id: UUID, client: ClientInfo, expires_at: datetime
    ) -> Session: ...

    async def get(self, session_id: UUID) -> Session | None: ...

    async def add_refresh_token(self, session_id: UUID, token_hash: bytes) -> None: ...

    async def use_refresh_token(self, token_hash: bytes) -> UUID | None:
        """Mark an unused token used (atomically); its session id, or None."""

    async def refresh_token_session(self, token_hash: bytes) -> UUID | None:
        """The session of a known token, used or not."""

    async def touch(self, session_id: UUID) -> None: ...

    async def revoke(self, session_id: UUID, reason: str) -> bool:
        """Revoke an active session; False if it was already revoked."""

    async def revoke_all(self, user_id: UUID, reason: str) -> list[UUID]: ...

    async def active_for_user(self, user_id: UUID) -> list[Session]: ...


class ResetTokenRepository(Protocol):
    async def add(self, user_id: UUID, token_hash: bytes, expires_at: datetime) -> None: ...

    async def is_usable(self, token_hash: bytes) -> bool:
        """Whether the token exists, unused and unexpired (a cheap look before bcrypt)."""

    async def consume(self, token_hash: bytes) -> UUID | None:
        """Mark an unused, unexpired token used; its user id, or None."""

    async def revoke_all(self, user_id: UUID) -> None:
        """End every unused token of the user."""


@dataclass(frozen=True, slots=True)
class ResetRecipient:
    """The account a reset email goes to."""

    id: UUID
    email: str
    full_name: str


@dataclass(frozen=True, slots=True)
class ResetEmailClaim:
    """What claiming a reset email job found: whether this is the job's first run, and
    the account (None: no account has that email)."""

    first_run: bool
    recipient: ResetRecipient | None = None


class ResetEmailIssuing(Protocol):
    """The reset email job's statements, in the transaction the job commits once SMTP
    has accepted the email (two round trips, so a job costs little besides SMTP)."""

    async def claim(self, *, job: str, job_id: str, email: str) -> ResetEmailClaim:
        """Record that ``job_id`` ran, find the account of ``email`` and lock issuing for
        it until the transaction ends, in one step; nothing is locked when the job ran
        before (``first_run`` False) or no account has that email."""

    async def issue_within_budget(
        self,
        user_id: UUID,
        token_hash: bytes,
        expires_at: datetime,
        *,
        since: datetime,
        budget: int,
    ) -> bool:
        """Store the token, unless the user was issued ``budget`` tokens since ``since``
        already; whether it was stored. Called after :meth:`claim` locked issuing, so
        the count holds however many jobs run at once."""


class UnitOfWork(Protocol):
    users: UserRepository
    sessions: SessionRepository
    reset_tokens: ResetTokenRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def add_event(self, routing_key: str, payload: dict[str, Any]) -> None:
        """Record an integration event, published only if the unit of work commits."""

    async def add_job(self, kind: JobKind, **kwargs: Any) -> None:
        """Enqueue a background job, sent only if the unit of work commits."""


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """A unit of work; ``read_only`` ones skip the transaction (one round trip a query)."""


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Constant work whether or not a hash exists (no user enumeration by timing)."""


class AccessTokenIssuer(Protocol):
    ttl_seconds: int

    def issue(
        self,
        *,
        user: User,
        session_id: UUID,
        permissions: Sequence[str],
    ) -> str: ...


class Revocations(Protocol):
    """Tells the gateway, through Redis, which access tokens stop working now."""

    async def revoke_sessions(self, session_ids: list[UUID]) -> None: ...

    async def require_token_version(self, user_id: UUID, minimum: int) -> None: ...


class LoginThrottle(Protocol):
    """The per-account budget of login attempts whose password turned out wrong."""

    async def take_attempt(self, email: str) -> LoginLockout | None:
        """Spend one attempt before the password is checked; the lockout if none is left.

        Taking is atomic, so concurrent guesses cannot all pass a check made
        before any of them is counted: at most the budget is ever evaluated.
        """

    async def give_back(self, email: str) -> None:
        """The password was right: the attempts spent so far are returned."""


class EmailDelivery(Protocol):
    async def send(
        self, to: str, email: RenderedEmail, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Deliver ``email`` now; raises when the server did not accept it."""

    async def aclose(self) -> None:
        """Close what the delivery keeps open (its SMTP connections)."""


class ResetMailer(Protocol):
    def compose_reset_email(
        self, *, full_name: str, token: str, expires_minutes: int
    ) -> RenderedEmail:
        """The password-reset email, with the link that carries ``token``."""


class Clock(Protocol):
    def now(self) -> datetime: ...
