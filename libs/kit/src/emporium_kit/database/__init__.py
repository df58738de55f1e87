"""The database part: a service's own PostgreSQL through async SQLAlchemy and asyncpg.

Engine and sessions (:func:`create_engine`, traced), pool settings
(:class:`DatabaseSettings`), the readiness check (:func:`postgres_check`), and
what turns "the database is down" into a 503 instead of a 500
(:data:`DATABASE_UNAVAILABLE_ERRORS`, :data:`DATABASE_ERROR_HANDLERS`, given to
``emporium_kit.app.create_service_app``). Only services with a database import
this part (``emporium-kit[database]``); the gateway never loads it.
"""

from __future__ import annotations

from typing import Literal

import asyncpg
import sqlalchemy.ext.asyncio
import structlog
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from starlette.requests import Request
from starlette.responses import Response

from emporium_kit.health import HealthCheck
from emporium_kit.problems import ExceptionHandler, problem_response
from emporium_kit.tracing import instrument_sqlalchemy

log = structlog.get_logger(__name__)


class DatabaseSettings(BaseModel):
    """Pool settings of a service's own database.

    A plain model, not a settings class: it reads no environment variable of
    its own. Each service fills it from its prefixed settings
    (``USERS_DATABASE_URL``, ``USERS_DB_POOL_SIZE``...), so an unrelated
    ``ECHO`` or ``URL`` in the environment can never configure a pool.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout_seconds: float = 5.0
    pool_recycle_seconds: int = 1800
    statement_timeout_ms: int = 5000
    echo: bool = False
    pre_ping: bool = False
    plan_cache_mode: Literal["auto", "force_custom_plan", "force_generic_plan"] | None = None
    """PostgreSQL's ``plan_cache_mode`` for the pool's connections; None leaves the
    server's (``auto``: a prepared statement may switch to one generic plan after five
    executions, which knows none of its parameters' values)."""


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
    instrument_sqlalchemy()
    server_settings = {
        "application_name": application_name,
        "statement_timeout": str(settings.statement_timeout_ms),
        "idle_in_transaction_session_timeout": "60000",
    }
    if settings.plan_cache_mode is not None:
        server_settings["plan_cache_mode"] = settings.plan_cache_mode
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
            "server_settings": server_settings,
        },
    )
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


# What asyncpg raises when the connection is gone or the server would not finish the
# statement in time (statement_timeout, a cancel, an administrator's shutdown, no
# connection slot left): the database cannot serve this now, which is a 503.
_DRIVER_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # What a connection the server ended under a statement may raise instead.
    asyncpg.InternalClientError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    OSError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot serve the request now (a 503): from
    SQLAlchemy, or straight from asyncpg (a hot read running SQL text on the driver)."""
    if isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        cause = exc.orig.__cause__ if exc.orig is not None else None
        return isinstance(cause, _DRIVER_UNAVAILABLE_ERRORS)
    return isinstance(exc, _DRIVER_UNAVAILABLE_ERRORS)


def postgres_check(engine: AsyncEngine) -> HealthCheck:
    """A readiness check (``emporium_kit.health``): one ``SELECT 1`` on the pool."""

    async def check() -> None:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    return check


async def _database_error(request: Request, exc: Exception) -> Response:
    """A lost or refused database connection is a 503; any other driver error a 500."""
    if is_unavailable(exc):
        log.warning("database_unavailable", error=repr(exc))
        return problem_response(
            503,
            code="dependency-unavailable",
            detail="the database is unavailable; try again shortly.",
            headers={"Retry-After": "5"},
        )
    log.error("database_error", error=repr(exc))
    return problem_response(500, detail="An unexpected error occurred.")


DATABASE_ERROR_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    DBAPIError: _database_error,
    # Raised as they are where a read runs on the asyncpg connection itself.
    asyncpg.PostgresError: _database_error,
    asyncpg.InterfaceError: _database_error,
    asyncpg.InternalClientError: _database_error,
}
"""Exception handlers a service with a database installs (``create_service_app``)."""
