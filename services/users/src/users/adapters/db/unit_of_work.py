"""One database transaction around a use case, with its repositories."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from emporium_kit.context import current_request_id
from emporium_kit.messaging.outbox import add_event
from users.adapters.db.repositories import (
    SqlResetTokenRepository,
    SqlSessionRepository,
    SqlUserRepository,
)
from users.adapters.db.tables import outbox
from users.use_cases.ports import ResetTokenRepository, SessionRepository, UserRepository


class SqlUnitOfWork:
    """Nothing is written unless ``commit`` is called; leaving the block rolls back."""

    users: UserRepository
    sessions: SessionRepository
    reset_tokens: ResetTokenRepository

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory

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
        await self._session.commit()

    async def add_event(self, routing_key: str, payload: dict[str, Any]) -> None:
        request_id = current_request_id()
        headers = {"x-request-id": request_id} if request_id else {}
        await add_event(self._session, outbox, routing_key, payload, headers=headers)
