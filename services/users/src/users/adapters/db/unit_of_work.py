"""Units of work: one database transaction around a use case, with its repositories."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from emporium_kit.database import create_session_factory
from emporium_kit.messaging.outbox import OutboxWrite, add_event, add_job, event_write, job_write
from users.adapters.db.repositories import (
    SqlResetTokenRepository,
    SqlSessionRepository,
    SqlUserRepository,
)
from users.adapters.db.tables import outbox
from users.use_cases.jobs import JobKind
from users.use_cases.ports import ResetTokenRepository, SessionRepository, UserRepository


class _Repositories:
    users: UserRepository
    sessions: SessionRepository
    reset_tokens: ResetTokenRepository

    def _open_repositories(self, executor: AsyncSession | AsyncConnection) -> None:
        self.users = SqlUserRepository(executor)
        self.sessions = SqlSessionRepository(executor)
        self.reset_tokens = SqlResetTokenRepository(executor)


class _OnSession(_Repositories):
    """The repositories and the outbox on one ORM session (a write transaction)."""

    _session: AsyncSession
    _jobs_queue: str = "users.jobs"

    def _open_session(self, session: AsyncSession) -> None:
        self._session = session
        self._open_repositories(session)

    async def add_event(self, routing_key: str, payload: dict[str, Any]) -> None:
        # add_event stores the request id and trace context of the current request.
        await add_event(self._session, outbox, routing_key, payload)

    async def add_job(self, kind: JobKind, **kwargs: Any) -> None:
        await add_job(self._session, outbox, self._jobs_queue, kind, **kwargs)


class SqlUnitOfWork(_OnSession):
    """Nothing is written unless ``commit`` is called; leaving the block rolls back.

    Its outbox rows (events, jobs) are built when asked for and written at
    commit, in the transaction, before COMMIT. A unit of work whose only change
    is one outbox row (asking for a reset email) writes it as one autocommit
    statement instead: atomic by itself, one round trip instead of BEGIN,
    INSERT and COMMIT, and the row still exists if and only if commit returned.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        jobs_queue: str,
        autocommit: AsyncEngine | None = None,
    ) -> None:
        self._factory = session_factory
        self._jobs_queue = jobs_queue
        self._autocommit = autocommit

    async def __aenter__(self) -> Self:
        self._open_session(self._factory())
        self._outbox_writes: list[OutboxWrite] = []
        return self

    async def add_event(self, routing_key: str, payload: dict[str, Any]) -> None:
        self._outbox_writes.append(event_write(outbox, routing_key, payload))

    async def add_job(self, kind: JobKind, **kwargs: Any) -> None:
        self._outbox_writes.append(job_write(outbox, self._jobs_queue, kind, **kwargs))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._session.rollback()
        finally:
            await self._session.close()

    async def commit(self) -> None:
        writes, self._outbox_writes = self._outbox_writes, []
        if len(writes) == 1 and self._autocommit is not None and not self._session.in_transaction():
            async with self._autocommit.connect() as connection:
                await writes[0].execute(connection)
            return
        for write in writes:
            await write.execute(self._session)
        await self._session.commit()


class SqlConsumerUnitOfWork(_OnSession):
    """The repositories on a transaction someone else owns: an event consumer's or a job's.

    The kit's ``EventConsumer``, or the job running it, commits once the work
    returns and rolls back if it raises (the inbox row that records the message
    or job id included), so this one never commits itself.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._open_session(session)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        raise RuntimeError("the consumer or job that owns this transaction commits it")


class SqlReadOnlyUnitOfWork(_Repositories):
    """Lookups on an autocommit connection, without an ORM session.

    No BEGIN or ROLLBACK around the statements and no session bookkeeping, so
    a lookup on a hot path (every authenticated request) costs one round trip.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __aenter__(self) -> Self:
        self._connection: AsyncConnection = await self._engine.connect()
        self._open_repositories(self._connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._connection.close()

    async def commit(self) -> None:
        raise RuntimeError("a read-only unit of work cannot commit")

    async def add_event(self, routing_key: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("a read-only unit of work cannot record events")

    async def add_job(self, kind: JobKind, **kwargs: Any) -> None:
        raise RuntimeError("a read-only unit of work cannot enqueue jobs")


class SqlUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine, *, jobs_queue: str = "users.jobs") -> None:
        self._jobs_queue = jobs_queue
        self._sessions = create_session_factory(engine)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork | SqlReadOnlyUnitOfWork:
        if read_only:
            return SqlReadOnlyUnitOfWork(self._autocommit)
        return SqlUnitOfWork(
            self._sessions, jobs_queue=self._jobs_queue, autocommit=self._autocommit
        )
