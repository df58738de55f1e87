"""One database transaction around a use case, with its repositories."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from emporium_kit.context import current_request_id
from emporium_kit.db import create_session_factory
from emporium_kit.messaging.outbox import add_event
from users.adapters.db.repositories import (
    SqlResetTokenRepository,
    SqlSessionRepository,
    SqlUserRepository,
)
from users.adapters.db.tables import outbox
from users.use_cases.ports import ResetTokenRepository, SessionRepository, UserRepository


class SqlUnitOfWork:
    """Nothing is written unless ``commit`` is called; leaving the block rolls back.

    A read-only unit of work runs on an autocommit connection: no BEGIN and no
    ROLLBACK around its statements, so a lookup costs one round trip.
    """

    users: UserRepository
    sessions: SessionRepository
    reset_tokens: ResetTokenRepository

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], *, read_only: bool = False
    ) -> None:
        self._factory = session_factory
        self._read_only = read_only

    async def __aenter__(self) -> Self:
        self._session = self._factory()
        self.users = SqlUserRepository(self._session)
        self.sessions = SqlSessionRepository(self._session)
        self.reset_tokens = SqlResetTokenRepository(self._session)
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
        if self._read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        await self._session.commit()

    async def add_event(self, routing_key: str, payload: dict[str, Any]) -> None:
        request_id = current_request_id()
        headers = {"x-request-id": request_id} if request_id else {}
        await add_event(self._session, outbox, routing_key, payload, headers=headers)


class SqlUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._writes = create_session_factory(engine)
        self._reads = create_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        if read_only:
            return SqlUnitOfWork(self._reads, read_only=True)
        return SqlUnitOfWork(self._writes)
