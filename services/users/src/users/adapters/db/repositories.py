"""SQLAlchemy Core repositories: one statement per question, no ORM objects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from users.adapters.db.tables import (
    TIMESTAMP,
    inbox,
    password_reset_tokens,
    refresh_tokens,
    role_permissions,
    roles,
    sessions,
    user_roles,
    users,
)
from users.domain.errors import UserNotFound
from users.domain.model import ClientInfo, Credentials, Session, User
from users.domain.passwords import normalize_email
from users.use_cases.ports import ResetEmailClaim, ResetRecipient

_roles_of_user = (
    sa.select(sa.func.coalesce(sa.func.array_agg(sa.text("role ORDER BY role")), sa.text("'{}'")))
    .select_from(user_roles)
    .where(user_roles.c.user_id == users.c.id)
    .scalar_subquery()
    .label("roles")
)

# The first key of the advisory locks that serialise issuing reset tokens per
# user (the second is a hash of the user id); any constant no other lock uses.
_RESET_ISSUING_LOCKS = 0x55525354

_USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.full_name,
    users.c.phone,
    users.c.created_at,
    users.c.token_version,
    _roles_of_user,
)


# Built once: every authenticated request runs it, so it skips statement
# construction as well as compilation (which SQLAlchemy caches anyway).
_USER_IN_ACTIVE_SESSION = (
    sa.select(*_USER_COLUMNS)
    .join(sessions, sessions.c.user_id == users.c.id)
    .where(
        users.c.id == sa.bindparam("uid"),
        sessions.c.id == sa.bindparam("sid"),
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > sa.func.now(),
    )
)


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        full_name=row.full_name,
        phone=row.phone,
        roles=tuple(row.roles),
        created_at=row.created_at,
        token_version=row.token_version,
    )


class SqlUserRepository:
    def __init__(self, session: AsyncSession | AsyncConnection) -> None:
        self._s = session

    async def add(
        self, *, email: str, password_hash: str, full_name: str, roles: Sequence[str]
    ) -> User | None:
        user_id = uuid4()
        inserted = await self._s.execute(
            insert(users)
            .values(
                id=user_id,
                email=email,
                email_normalized=normalize_email(email),
                password_hash=password_hash,
                full_name=full_name,
            )
            .on_conflict_do_nothing(index_elements=[users.c.email_normalized])
            .returning(users.c.id)
        )
        if inserted.scalar_one_or_none() is None:
            return None
        await self._s.execute(
            sa.insert(user_roles), [{"user_id": user_id, "role": role} for role in roles]
        )
        return await self.get(user_id)

    async def get(self, user_id: UUID) -> User | None:
        row = (
            await self._s.execute(sa.select(*_USER_COLUMNS).where(users.c.id == user_id))
        ).one_or_none()
        return _user(row) if row else None

    async def get_in_session(self, user_id: UUID, session_id: UUID) -> User | None:
        row = (
            await self._s.execute(_USER_IN_ACTIVE_SESSION, {"uid": user_id, "sid": session_id})
        ).one_or_none()
        return _user(row) if row else None

    async def credentials_by_email(self, email: str) -> Credentials | None:
        row = (
            await self._s.execute(
                sa.select(*_USER_COLUMNS, users.c.password_hash).where(
                    users.c.email_normalized == email
                )
            )
        ).one_or_none()
        return Credentials(user=_user(row), password_hash=row.password_hash) if row else None

    async def update_profile(self, user_id: UUID, changes: dict[str, str | None]) -> User:
        if changes:
            await self._s.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(**changes, updated_at=sa.func.now())
            )
        user = await self.get(user_id)
        if user is None:
            raise UserNotFound
        return user

    async def set_password(self, user_id: UUID, password_hash: str) -> int:
        version: int = (
            await self._s.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(
                    password_hash=password_hash,
                    token_version=users.c.token_version + 1,
                    updated_at=sa.func.now(),
                )
                .returning(users.c.token_version)
            )
        ).scalar_one()
        return version

    async def set_roles(self, user_id: UUID, roles: Sequence[str]) -> int:
        # Kept roles keep their rows (no delete and re-insert), so the rows a
        # concurrent change has locked stay the rows it re-reads.
        await self._s.execute(
            sa.delete(user_roles).where(
                user_roles.c.user_id == user_id, user_roles.c.role.not_in(list(roles))
            )
        )
        await self._s.execute(
            insert(user_roles)
            .values([{"user_id": user_id, "role": role} for role in roles])
            .on_conflict_do_nothing(index_elements=[user_roles.c.user_id, user_roles.c.role])
        )
        version: int = (
            await self._s.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(token_version=users.c.token_version + 1, updated_at=sa.func.now())
                .returning(users.c.token_version)
            )
        ).scalar_one()
        return version

    async def known_roles(self) -> set[str]:
        return set((await self._s.execute(sa.select(roles.c.name))).scalars())

    async def lock_role_holders(self, role: str) -> frozenset[UUID]:
        # FOR UPDATE in one order: concurrent callers queue instead of deadlocking,
        # and a waiter re-reads the rows once the holder commits (READ COMMITTED).
        result = await self._s.execute(
            sa.select(user_roles.c.user_id)
            .where(user_roles.c.role == role)
            .order_by(user_roles.c.user_id)
            .with_for_update()
        )
        return frozenset(result.scalars())

    async def permissions_of(self, role_names: Sequence[str]) -> list[str]:
        result = await self._s.execute(
            sa.select(role_permissions.c.permission)
            .distinct()
            .where(role_permissions.c.role.in_(list(role_names)))
            .order_by(role_permissions.c.permission)
        )
        return list(result.scalars())

    async def page(
        self, *, limit: int, after: tuple[datetime, UUID] | None, email: str | None
    ) -> list[User]:
        query = sa.select(*_USER_COLUMNS).order_by(users.c.created_at.desc(), users.c.id.desc())
        if email is not None:
            query = query.where(users.c.email_normalized == normalize_email(email))
        if after is not None:
            query = query.where(sa.tuple_(users.c.created_at, users.c.id) < sa.tuple_(*after))
        rows = (await self._s.execute(query.limit(limit))).all()
        return [_user(row) for row in rows]


def _session(row: Any) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        user_agent=row.user_agent,
        ip=str(row.ip) if row.ip is not None else None,
        revoked_at=row.revoked_at,
    )


class SqlSessionRepository:
    def __init__(self, session: AsyncSession | AsyncConnection) -> None:
        self._s = session

    async def start(self, *, user_id: UUID, client: ClientInfo, expires_at: datetime) -> Session:
        row = (
            await self._s.execute(
                sa.insert(sessions)
                .values(
                    id=uuid4(),
                    user_id=user_id,
                    expires_at=expires_at,
                    user_agent=client.user_agent,
                    ip=client.ip,
                )
                .returning(*sessions.c)
            )
        ).one()
        return _session(row)

    async def get(self, session_id: UUID) -> Session | None:
        row = (
            await self._s.execute(sa.select(*sessions.c).where(sessions.c.id == session_id))
        ).one_or_none()
        return _session(row) if row else None

    async def add_refresh_token(self, session_id: UUID, token_hash: bytes) -> None:
        await self._s.execute(
            sa.insert(refresh_tokens).values(token_hash=token_hash, session_id=session_id)
        )

    async def use_refresh_token(self, token_hash: bytes) -> UUID | None:
        session_id: UUID | None = (
            await self._s.execute(
                sa.update(refresh_tokens)
                .where(
                    refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None)
                )
                .values(used_at=sa.func.now())
                .returning(refresh_tokens.c.session_id)
            )
        ).scalar_one_or_none()
        return session_id

    async def refresh_token_session(self, token_hash: bytes) -> UUID | None:
        session_id: UUID | None = (
            await self._s.execute(
                sa.select(refresh_tokens.c.session_id).where(
                    refresh_tokens.c.token_hash == token_hash
                )
            )
        ).scalar_one_or_none()
        return session_id

    async def touch(self, session_id: UUID) -> None:
        await self._s.execute(
            sa.update(sessions)
            .where(sessions.c.id == session_id)
            .values(last_used_at=sa.func.now())
        )

    async def revoke(self, session_id: UUID, reason: str) -> bool:
        result = await self._s.execute(
            sa.update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=sa.func.now(), revoked_reason=reason)
            .returning(sessions.c.id)
        )
        return result.scalar_one_or_none() is not None

    async def revoke_all(self, user_id: UUID, reason: str) -> list[UUID]:
        result = await self._s.execute(
            sa.update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=sa.func.now(), revoked_reason=reason)
            .returning(sessions.c.id)
        )
        return list(result.scalars())

    async def active_for_user(self, user_id: UUID) -> list[Session]:
        rows = await self._s.execute(
            sa.select(*sessions.c)
            .where(
                sessions.c.user_id == user_id,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > sa.func.now(),
            )
            .order_by(sessions.c.last_used_at.desc())
        )
        return [_session(row) for row in rows]


class SqlResetTokenRepository:
    def __init__(self, session: AsyncSession | AsyncConnection) -> None:
        self._s = session

    async def add(self, user_id: UUID, token_hash: bytes, expires_at: datetime) -> None:
        await self._s.execute(
            sa.insert(password_reset_tokens).values(
                token_hash=token_hash, user_id=user_id, expires_at=expires_at
            )
        )

    async def is_usable(self, token_hash: bytes) -> bool:
        found = await self._s.execute(
            sa.select(sa.literal(1)).where(
                password_reset_tokens.c.token_hash == token_hash,
                password_reset_tokens.c.used_at.is_(None),
                password_reset_tokens.c.expires_at > sa.func.now(),
            )
        )
        return found.first() is not None

    async def consume(self, token_hash: bytes) -> UUID | None:
        user_id: UUID | None = (
            await self._s.execute(
                sa.update(password_reset_tokens)
                .where(
                    password_reset_tokens.c.token_hash == token_hash,
                    password_reset_tokens.c.used_at.is_(None),
                    password_reset_tokens.c.expires_at > sa.func.now(),
                )
                .values(used_at=sa.func.now())
                .returning(password_reset_tokens.c.user_id)
            )
        ).scalar_one_or_none()
        return user_id

    async def revoke_all(self, user_id: UUID) -> None:
        await self._s.execute(
            sa.update(password_reset_tokens)
            .where(
                password_reset_tokens.c.user_id == user_id,
                password_reset_tokens.c.used_at.is_(None),
            )
            .values(used_at=sa.func.now())
        )


# The reset email job's first statement: its job id into the inbox, the account
# by email, and the per-user issuing lock, taken only when the job id was new
# and the account exists (a transaction-scoped advisory lock, not a row lock on
# the users row: it is held while SMTP answers, and logins, profile changes and
# password updates of that user must not wait for it). No row: the job ran.
_claimed = (
    insert(inbox)
    .values(consumer=sa.bindparam("job"), message_id=sa.bindparam("job_id", type_=sa.Uuid()))
    .on_conflict_do_nothing()
    .returning(inbox.c.message_id)
    .cte("claimed")
)
_CLAIM_RESET_EMAIL = sa.select(
    users.c.id,
    users.c.email,
    users.c.full_name,
    sa.case(
        (
            users.c.id.is_not(None),
            sa.cast(
                sa.func.pg_advisory_xact_lock(
                    _RESET_ISSUING_LOCKS, sa.func.hashtext(sa.cast(users.c.id, sa.Text))
                ),
                sa.Text,
            ),
        )
    ).label("locked"),
).select_from(
    _claimed.outerjoin(users, users.c.email_normalized == sa.bindparam("email", type_=sa.Text))
)

# Its second, after the lock: the token, unless the hourly budget is spent. A
# statement of its own, so that it reads what the previous holder of the lock
# committed (READ COMMITTED: a snapshot per statement).
_issued_since = (
    sa.select(sa.func.count())
    .select_from(password_reset_tokens)
    .where(
        password_reset_tokens.c.user_id == sa.bindparam("user_id", type_=sa.Uuid()),
        password_reset_tokens.c.created_at > sa.bindparam("since", type_=TIMESTAMP),
    )
    .scalar_subquery()
)
_ISSUE_WITHIN_BUDGET = (
    sa.insert(password_reset_tokens)
    .from_select(
        ["token_hash", "user_id", "expires_at"],
        sa.select(
            sa.bindparam("token_hash", type_=sa.LargeBinary()),
            sa.bindparam("user_id", type_=sa.Uuid()),
            sa.bindparam("expires_at", type_=TIMESTAMP),
        ).where(_issued_since < sa.bindparam("budget", type_=sa.Integer())),
    )
    .returning(password_reset_tokens.c.token_hash)
)


class SqlResetEmailIssuing:
    """The reset email job's two statements, on the job's connection and transaction."""

    def __init__(self, connection: AsyncConnection | AsyncSession) -> None:
        self._c = connection

    async def claim(self, *, job: str, job_id: str, email: str) -> ResetEmailClaim:
        row = (
            await self._c.execute(
                _CLAIM_RESET_EMAIL, {"job": job, "job_id": UUID(job_id), "email": email}
            )
        ).one_or_none()
        if row is None:
            return ResetEmailClaim(first_run=False)
        if row.id is None:
            return ResetEmailClaim(first_run=True)
        return ResetEmailClaim(
            first_run=True,
            recipient=ResetRecipient(id=row.id, email=row.email, full_name=row.full_name),
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
        stored = await self._c.execute(
            _ISSUE_WITHIN_BUDGET,
            {
                "token_hash": token_hash,
                "user_id": user_id,
                "expires_at": expires_at,
                "since": since,
                "budget": budget,
            },
        )
        return stored.first() is not None
