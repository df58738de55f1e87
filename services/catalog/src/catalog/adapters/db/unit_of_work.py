"""Units of work: one database transaction around a use case, with its repositories."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from catalog.adapters.db.repositories import (
    SqlCategoryRepository,
    SqlProductReads,
    SqlProductRepository,
    WordAlternatives,
)
from catalog.adapters.db.tables import outbox
from catalog.use_cases.ports import CategoryRepository, ProductRepository
from emporium_kit.database import create_session_factory
from emporium_kit.messaging.outbox import add_event


class _Repositories:
    categories: CategoryRepository
    products: ProductRepository

    def _open_repositories(self, executor: AsyncSession | AsyncConnection) -> None:
        self.categories = SqlCategoryRepository(executor)
        self.products = SqlProductRepository(executor)


class _OnSession(_Repositories):
    """The repositories and the outbox on one session (a write transaction)."""

    _session: AsyncSession

    def _open_session(self, session: AsyncSession) -> None:
        self._session = session
        self._open_repositories(session)

    async def add_event(self, routing_key: str, payload: dict[str, Any]) -> None:
        # add_event stores the request id and trace context of the current request.
        await add_event(self._session, outbox, routing_key, payload)


class SqlUnitOfWork(_OnSession):
    """Nothing is written unless ``commit`` is called; leaving the block rolls back."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory

    async def __aenter__(self) -> Self:
        self._open_session(self._factory())
        return self

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
        await self._session.commit()


class SqlConsumerUnitOfWork(_OnSession):
    """The repositories on a transaction someone else owns: an event consumer's or a job's.

    The kit's ``EventConsumer``, or the job running it, commits once the work returns
    and rolls back if it raises (the inbox row that records the message included), so
    this one never commits itself.
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
    """Reads on an autocommit connection, without a session: no BEGIN or ROLLBACK around
    the statement, so a read on a hot path (listing, product by id) is one round trip."""

    def __init__(self, engine: AsyncEngine, alternatives: WordAlternatives) -> None:
        self._engine = engine
        self._alternatives = alternatives

    async def __aenter__(self) -> Self:
        self._connection: AsyncConnection = await self._engine.connect()
        self._open_repositories(self._connection)
        self.products = SqlProductReads(self._connection, self._alternatives)
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


class SqlUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = create_session_factory(engine)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # One per process: the reads of every request share the looked-up words.
        self._alternatives = WordAlternatives()

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The session factory (an event consumer opens its transactions with it)."""
        return self._sessions

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork | SqlReadOnlyUnitOfWork:
        if read_only:
            return SqlReadOnlyUnitOfWork(self._autocommit, self._alternatives)
        return SqlUnitOfWork(self._sessions)
