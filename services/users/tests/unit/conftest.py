"""In-memory fakes of the identity ports: fast use-case tests with no I/O.

They behave (a used refresh token stays used, a revoked session stays revoked),
so the tests check the rules, not the calls.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self
from uuid import UUID, uuid4

import pytest

from emporium_kit.email import EmailDeliveryFailed, RenderedEmail
from users.domain.model import ClientInfo, Credentials, LoginLockout, Session, User
from users.use_cases.jobs import SEND_PASSWORD_RESET_EMAIL, JobKind
from users.use_cases.ports import ResetEmailClaim, ResetRecipient
from users.use_cases.ports_and_policy import Policy, PortsAndPolicy
from users.use_cases.send_reset_email import send_reset_email


@dataclass
class FakeResetToken:
    user_id: UUID
    created_at: datetime
    expires_at: datetime
    used: bool = False


@dataclass
class World:
    """Everything the fakes store; a unit of work edits a copy and commits it back."""

    users: dict[UUID, Credentials] = field(default_factory=dict)
    sessions: dict[UUID, Session] = field(default_factory=dict)
    refresh: dict[bytes, tuple[UUID, bool]] = field(default_factory=dict)
    resets: dict[bytes, FakeResetToken] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    jobs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    jobs_run: set[tuple[str, str]] = field(default_factory=set)
    grants: dict[str, list[str]] = field(default_factory=lambda: {"admin": ["users:admin"]})


class FakeClock:
    def __init__(self) -> None:
        self.current = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current


class FakeUsers:
    def __init__(self, world: World, clock: FakeClock) -> None:
        self.w, self.clock = world, clock

    async def add(
        self, *, email: str, password_hash: str, full_name: str, roles: Sequence[str]
    ) -> User | None:
        if any(c.user.email.casefold() == email.casefold() for c in self.w.users.values()):
            return None
        user = User(uuid4(), email, full_name, None, tuple(sorted(roles)), self.clock.now())
        self.w.users[user.id] = Credentials(user, password_hash)
        return user

    async def get(self, user_id: UUID) -> User | None:
        found = self.w.users.get(user_id)
        return found.user if found else None

    async def get_in_session(self, user_id: UUID, session_id: UUID) -> User | None:
        session = self.w.sessions.get(session_id)
        if session is None or session.user_id != user_id or not session.is_active(self.clock.now()):
            return None
        return await self.get(user_id)

    async def credentials_by_email(self, email: str) -> Credentials | None:
        return next((c for c in self.w.users.values() if c.user.email.casefold() == email), None)

    async def update_profile(self, user_id: UUID, changes: dict[str, str | None]) -> User:
        creds = self.w.users[user_id]
        self.w.users[user_id] = replace(creds, user=replace(creds.user, **changes))  # type: ignore[arg-type]
        return self.w.users[user_id].user

    async def set_password(self, user_id: UUID, password_hash: str) -> int:
        creds = self.w.users[user_id]
        user = replace(creds.user, token_version=creds.user.token_version + 1)
        self.w.users[user_id] = Credentials(user, password_hash)
        return user.token_version

    async def set_roles(self, user_id: UUID, roles: Sequence[str]) -> int:
        creds = self.w.users[user_id]
        user = replace(creds.user, roles=tuple(roles), token_version=creds.user.token_version + 1)
        self.w.users[user_id] = replace(creds, user=user)
        return user.token_version

    async def known_roles(self) -> set[str]:
        return {"customer", "staff", "admin"}

    async def lock_role_holders(self, role: str) -> frozenset[UUID]:
        return frozenset(c.user.id for c in self.w.users.values() if role in c.user.roles)

    async def permissions_of(self, roles: Sequence[str]) -> list[str]:
        return sorted({p for r in roles for p in self.w.grants.get(r, [])})

    async def page(
        self, *, limit: int, after: tuple[datetime, UUID] | None, email: str | None
    ) -> list[User]:
        users = sorted(
            (c.user for c in self.w.users.values()),
            key=lambda u: (u.created_at, u.id),
            reverse=True,
        )
        return users[:limit]


class FakeSessions:
    def __init__(self, world: World, clock: FakeClock) -> None:
        self.w, self.clock = world, clock

    async def start(self, *, user_id: UUID, client: ClientInfo, expires_at: datetime) -> Session:
        now = self.clock.now()
        session = Session(uuid4(), user_id, now, now, expires_at, client.user_agent, client.ip)
        self.w.sessions[session.id] = session
        return session

    async def get(self, session_id: UUID) -> Session | None:
        return self.w.sessions.get(session_id)

    async def add_refresh_token(self, session_id: UUID, token_hash: bytes) -> None:
        self.w.refresh[token_hash] = (session_id, False)

    async def use_refresh_token(self, token_hash: bytes) -> UUID | None:
        found = self.w.refresh.get(token_hash)
        if found is None or found[1]:
            return None
        self.w.refresh[token_hash] = (found[0], True)
        return found[0]

    async def refresh_token_session(self, token_hash: bytes) -> UUID | None:
        found = self.w.refresh.get(token_hash)
        return found[0] if found else None

    async def touch(self, session_id: UUID) -> None:
        self.w.sessions[session_id] = replace(
            self.w.sessions[session_id], last_used_at=self.clock.now()
        )

    async def revoke(self, session_id: UUID, reason: str) -> bool:
        session = self.w.sessions[session_id]
        if session.revoked_at is not None:
            return False
        self.w.sessions[session_id] = replace(session, revoked_at=self.clock.now())
        return True

    async def revoke_all(self, user_id: UUID, reason: str) -> list[UUID]:
        ids = [s.id for s in self.w.sessions.values() if s.user_id == user_id]
        return [sid for sid in ids if await self.revoke(sid, reason)]

    async def active_for_user(self, user_id: UUID) -> list[Session]:
        now = self.clock.now()
        return [s for s in self.w.sessions.values() if s.user_id == user_id and s.is_active(now)]


class FakeResetTokens:
    def __init__(self, world: World, clock: FakeClock) -> None:
        self.w, self.clock = world, clock

    async def add(self, user_id: UUID, token_hash: bytes, expires_at: datetime) -> None:
        self.w.resets[token_hash] = FakeResetToken(user_id, self.clock.now(), expires_at)

    async def is_usable(self, token_hash: bytes) -> bool:
        found = self.w.resets.get(token_hash)
        return found is not None and not found.used and found.expires_at > self.clock.now()

    async def consume(self, token_hash: bytes) -> UUID | None:
        if not await self.is_usable(token_hash):
            return None
        found = self.w.resets[token_hash]
        found.used = True
        return found.user_id

    async def revoke_all(self, user_id: UUID) -> None:
        for token in self.w.resets.values():
            if token.user_id == user_id:
                token.used = True

    def issued_since(self, user_id: UUID, since: datetime) -> int:
        return sum(t.user_id == user_id and t.created_at > since for t in self.w.resets.values())


class FakeUnitOfWork:
    """Changes land in the shared world only on commit, like a transaction."""

    def __init__(self, world: World, clock: FakeClock) -> None:
        self.world, self.clock = world, clock

    async def __aenter__(self) -> Self:
        self.draft = copy.deepcopy(self.world)
        self.users = FakeUsers(self.draft, self.clock)
        self.sessions = FakeSessions(self.draft, self.clock)
        self.reset_tokens = FakeResetTokens(self.draft, self.clock)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.world.__dict__.update(copy.deepcopy(self.draft).__dict__)

    async def add_event(self, routing_key: str, payload: dict[str, Any]) -> None:
        self.draft.events.append((routing_key, payload))

    async def add_job(self, kind: JobKind, **kwargs: Any) -> None:
        self.draft.jobs.append((kind.task_name, kwargs))

    # The reset email job's statements (ResetEmailIssuing), on the same draft.

    async def claim(self, *, job: str, job_id: str, email: str) -> ResetEmailClaim:
        if (job, job_id) in self.draft.jobs_run:
            return ResetEmailClaim(first_run=False)
        self.draft.jobs_run.add((job, job_id))
        credentials = await self.users.credentials_by_email(email)
        if credentials is None:
            return ResetEmailClaim(first_run=True)
        user = credentials.user
        return ResetEmailClaim(
            first_run=True,
            recipient=ResetRecipient(id=user.id, email=user.email, full_name=user.full_name),
        )

    async def issue_within_budget(
        self,
        user_id: UUID,
        token_hash: bytes,
        expires_at: datetime,
        *,
        since: datetime,
        budget: int,
    ) -> bool:
        if self.reset_tokens.issued_since(user_id, since) >= budget:
            return False
        await self.reset_tokens.add(user_id, token_hash, expires_at)
        return True


class PlainHasher:
    """Hashes by prefixing, and counts the hashes it was asked for (bcrypt's cost)."""

    def __init__(self) -> None:
        self.hashed = 0

    async def hash(self, password: str) -> str:
        self.hashed += 1
        return f"plain:{password}"

    async def verify(self, password: str, password_hash: str | None) -> bool:
        return password_hash == f"plain:{password}"


class CountingTokens:
    ttl_seconds = 900

    def __init__(self) -> None:
        self.issued: list[tuple[UUID, UUID, tuple[str, ...]]] = []

    def issue(self, *, user: User, session_id: UUID, permissions: Sequence[str]) -> str:
        self.issued.append((user.id, session_id, tuple(permissions)))
        return f"access-{len(self.issued)}"


class RecordingRevocations:
    def __init__(self) -> None:
        self.sessions: list[UUID] = []
        self.versions: dict[UUID, int] = {}

    async def revoke_sessions(self, session_ids: list[UUID]) -> None:
        self.sessions += session_ids

    async def require_token_version(self, user_id: UUID, minimum: int) -> None:
        self.versions[user_id] = minimum


class BudgetThrottle:
    def __init__(self, budget: int = 3) -> None:
        self.budget = budget
        self.spent: dict[str, int] = {}

    async def take_attempt(self, email: str) -> LoginLockout | None:
        if self.spent.get(email, 0) >= self.budget:
            return LoginLockout(limit=self.budget, retry_after=60)
        self.spent[email] = self.spent.get(email, 0) + 1
        return None

    async def give_back(self, email: str) -> None:
        self.spent.pop(email, None)


class SentEmails:
    """An SMTP server that accepts (into ``sent``) unless told to refuse the next email.

    What it accepted stays sent whatever the unit of work does afterwards.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, RenderedEmail, Mapping[str, str] | None]] = []
        self.refuse_next = False

    async def send(
        self, to: str, email: RenderedEmail, *, headers: Mapping[str, str] | None = None
    ) -> None:
        if self.refuse_next:
            self.refuse_next = False
            raise EmailDeliveryFailed(to, 1, "554 refused")
        self.sent.append((to, email, headers))


class TokenInBodyComposer:
    """Writes the token and the lifetime into the email, for the tests to read back."""

    def compose_reset_email(
        self, *, full_name: str, token: str, expires_minutes: int
    ) -> RenderedEmail:
        return RenderedEmail(subject=full_name, text=token, html=str(expires_minutes))


@dataclass
class Harness:
    ports: PortsAndPolicy
    world: World
    clock: FakeClock
    revocations: RecordingRevocations
    hasher: PlainHasher
    emails: SentEmails
    ran: int = 0

    async def run_reset_jobs(self) -> None:
        """What the users worker does with each new reset-email job: the use case in a
        transaction of its own that commits only if it returns (a job that raised is
        tried again: ``ran -= 1``)."""
        for name, kwargs in self.world.jobs[self.ran :]:
            self.ran += 1
            if name != SEND_PASSWORD_RESET_EMAIL.task_name:
                continue
            async with self.ports.uow() as uow:
                assert isinstance(uow, FakeUnitOfWork)
                await send_reset_email(
                    self.ports, uow, job_id=f"job-{self.ran}", email=kwargs["email"]
                )
                await uow.commit()

    def reset_emails(self) -> list[dict[str, Any]]:
        return [
            {"to": to, "token": email.text, "minutes": int(email.html)}
            for to, email, _ in self.emails.sent
        ]

    def later(self, **delta: float) -> None:
        self.clock.current += timedelta(**delta)


@pytest.fixture
def harness() -> Harness:
    world, clock = World(), FakeClock()
    revocations, hasher, emails = RecordingRevocations(), PlainHasher(), SentEmails()
    ports = PortsAndPolicy(
        uow=lambda read_only=False: FakeUnitOfWork(world, clock),
        hasher=hasher,
        tokens=CountingTokens(),
        revocations=revocations,
        throttle=BudgetThrottle(),
        mailer=TokenInBodyComposer(),
        emails=emails,
        clock=clock,
        policy=Policy(refresh_ttl_seconds=3600, reset_ttl_seconds=1800, reset_emails_per_hour=3),
    )
    return Harness(ports, world, clock, revocations, hasher, emails)
