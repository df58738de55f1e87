"""Units of work: one database transaction around a use case, with its repository."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ops.adapters.db.repositories import SqlDeadLetterRepository
from ops.use_cases.ports import DeadLetterRepository


class SqlUnitOfWork:
    """One transaction on one connection: nothing is written unless ``commit`` is
    called; leaving the block rolls back what was not committed."""

    dead_letters: DeadLetterRepository

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __aenter__(self) -> Self:
        self._connection: AsyncConnection = await self._engine.connect()
        self.dead_letters = SqlDeadLetterRepository(self._connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._connection.rollback()
        finally:
            await self._connection.close()

    async def commit(self) -> None:
        await self._connection.commit()


class SqlReadOnlyUnitOfWork:
    """Reads on an autocommit connection: no BEGIN or ROLLBACK around the query."""

    dead_letters: DeadLetterRepository

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __aenter__(self) -> Self:
        self._connection: AsyncConnection = await self._engine.connect()
        self.dead_letters = SqlDeadLetterRepository(self._connection)
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


class SqlUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork | SqlReadOnlyUnitOfWork:
        if read_only:
            return SqlReadOnlyUnitOfWork(self._autocommit)
        return SqlUnitOfWork(self._engine)
