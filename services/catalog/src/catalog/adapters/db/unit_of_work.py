"""Units of work: one database transaction around a use case, with its repositories."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from catalog.adapters.db.repositories import (
    SqlCategoryReads,
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


class _OnSession(_Repositories):
    """The repositories and the outbox on one session (a write transaction)."""

    _session: AsyncSession

    def _open_session(self, session: AsyncSession) -> None:
        self._session = session
        self.categories = SqlCategoryRepository(session)
        self.products = SqlProductRepository(session)

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


def _leaves_connection_unusable(exc: BaseException, driver: asyncpg.Connection) -> bool:
    """Whether the asyncpg connection a read raised ``exc`` on must leave the pool.

    A statement's own error (a PostgreSQL error that is not a lost connection) and
    any error of the caller's leave it as it was. A lost connection, a client-side
    failure of the protocol, or an interrupted statement (a cancelled task) may leave
    it closed or halfway through an exchange with the server."""
    if driver.is_closed():
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return isinstance(exc, asyncpg.PostgresConnectionError)
    return not isinstance(exc, Exception) or isinstance(
        exc, asyncpg.InterfaceError | asyncpg.InternalClientError | OSError
    )


class SqlReadOnlyUnitOfWork(_Repositories):
    """Reads on a pooled asyncpg connection, outside a transaction and without
    SQLAlchemy's connection: no BEGIN or ROLLBACK around a statement, so a read on a
    hot path (listing, product by id) is one round trip, and no ``Connection`` object
    with its execution options per request (a fifth of the listing's CPU in the
    catalog, docs/performance.md session 8)."""

    def __init__(self, engine: AsyncEngine, alternatives: WordAlternatives) -> None:
        self._engine = engine
        self._alternatives = alternatives

    async def __aenter__(self) -> Self:
        self._pooled: PoolProxiedConnection = await self._engine.raw_connection()
        driver = self._pooled.driver_connection  # asyncpg's
        self.categories = SqlCategoryReads(driver)
        self.products = SqlProductReads(driver, self._alternatives)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Back to the pool (its reset on return rolls back nothing: nothing began), or
        # out of it when the connection is gone or was left mid-statement. In a
        # greenlet: the pool may close it (an overflow one, one past its recycle age).
        pooled = self._pooled
        if exc is not None and _leaves_connection_unusable(exc, pooled.driver_connection):
            await greenlet_spawn(pooled.invalidate, exc)
        else:
            await greenlet_spawn(pooled.close)

    async def commit(self) -> None:
        raise RuntimeError("a read-only unit of work cannot commit")

    async def add_event(self, routing_key: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("a read-only unit of work cannot record events")


class SqlUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = create_session_factory(engine)
        self._engine = engine
        # One per process: the reads of every request share the looked-up words.
        self._alternatives = WordAlternatives()

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The session factory (an event consumer opens its transactions with it)."""
        return self._sessions

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork | SqlReadOnlyUnitOfWork:
        if read_only:
            return SqlReadOnlyUnitOfWork(self._engine, self._alternatives)
        return SqlUnitOfWork(self._sessions)
