"""Async SQLAlchemy engine and sessions for a service's own database."""

from __future__ import annotations

import asyncpg
import sqlalchemy.ext.asyncio
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from emporium_kit.settings import DatabaseSettings

# Errors that mean "the database is not reachable right now" (a 503, not a 500).
DATABASE_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    ConnectionRefusedError,
    asyncpg.CannotConnectNowError,
)


def create_engine(settings: DatabaseSettings, *, application_name: str) -> AsyncEngine:
    """The pooled engine of a service's own database; its statements are traced."""
    # Looked up at call time: the SQLAlchemy instrumentation wraps it (tracing).
    engine = sqlalchemy.ext.asyncio.create_async_engine(
        settings.url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        pool_recycle=settings.pool_recycle_seconds,
        # No pre-ping: it costs a round trip on every checkout. A connection that
        # died is invalidated on first use (that request answers 503) and the
        # pool opens a fresh one; pool_recycle retires idle ones first.
        pool_pre_ping=settings.pre_ping,
        echo=settings.echo,
        connect_args={
            "timeout": 5,
            "command_timeout": max(1.0, settings.statement_timeout_ms / 1000 + 1),
            "server_settings": {
                "application_name": application_name,
                "statement_timeout": str(settings.statement_timeout_ms),
                "idle_in_transaction_session_timeout": "60000",
            },
        },
    )
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return exc.connection_invalidated or isinstance(
        cause,
        asyncpg.PostgresConnectionError | asyncpg.InterfaceError | OSError,
    )
