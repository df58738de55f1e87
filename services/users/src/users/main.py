"""The users service's composition root: ``create_app()`` wires adapters into use cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import orjson
import structlog
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_random_exponential

from emporium_kit.app import create_service_app
from emporium_kit.client_ip import ClientIpResolver
from emporium_kit.database import (
    DATABASE_ERROR_HANDLERS,
    DATABASE_UNAVAILABLE_ERRORS,
    create_engine,
    postgres_check,
)
from emporium_kit.health import redis_check
from emporium_kit.identity import TOKEN_VERIFIER, TokenVerifier
from emporium_kit.logging import configure_logging
from emporium_kit.messaging import rabbitmq_check
from emporium_kit.messaging.relay import OutboxRelay
from emporium_kit.pagination import CursorCodec, InvalidCursor
from emporium_kit.tracing import configure_tracing
from users.adapters.db.tables import outbox
from users.adapters.signing_keys import load_signing_key
from users.composition import build_ports
from users.domain import errors
from users.entrypoints.http.components import USERS, UsersComponents
from users.entrypoints.http.routes import accounts, auth, wellknown
from users.settings import UsersSettings
from users.use_cases.bootstrap_admin import bootstrap_admin
from users.use_cases.ports_and_policy import PortsAndPolicy

VERSION = "1.0.0"
log = structlog.get_logger(__name__)

DOMAIN_ERRORS: dict[type[Exception], int] = {
    errors.EmailAlreadyRegistered: 409,
    errors.InvalidCredentials: 401,
    errors.TooManyLoginFailures: 429,
    errors.RefreshTokenInvalid: 401,
    errors.RefreshTokenReused: 401,
    errors.SessionRevoked: 401,
    errors.ResetTokenInvalid: 400,
    errors.UserNotFound: 404,
    errors.SessionNotFound: 404,
    errors.UnknownRole: 422,
    errors.LastAdminRemoval: 409,
    InvalidCursor: 400,
}


def create_app(settings: UsersSettings | None = None) -> FastAPI:
    settings = settings or UsersSettings()
    configure_logging("users", level=settings.log_level, json=settings.log_json)

    engine = create_engine(settings.database, application_name="users")
    redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    key = load_signing_key(
        settings.jwt_private_key.get_secret_value() if settings.jwt_private_key else None,
        settings.jwt_private_key_file,
    )
    ports = build_ports(settings, engine=engine, redis=redis, key=key)
    # Published rows are pruned by the worker's scheduled job, not by the relay.
    relay = OutboxRelay(engine, outbox, settings.amqp_url, name="users-outbox", purge_interval=None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background: list[asyncio.Task[object]] = []
        try:
            await _create_admin(ports, settings)
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            log.warning("admin_bootstrap_deferred", error=repr(exc))
            background.append(
                asyncio.create_task(_bootstrap_admin(ports, settings), name="bootstrap-admin")
            )
        if settings.run_outbox_relay:
            background.append(asyncio.create_task(relay.run(), name="outbox-relay"))
        try:
            yield
        finally:
            # Uvicorn has stopped taking requests and finished in-flight ones; the
            # relay finishes its pass (an unconfirmed row stays for the next one).
            await relay.stop()
            if background:
                await asyncio.wait(background, timeout=10)
            for task in background:
                task.cancel()
            for task in background:
                with suppress(asyncio.CancelledError):
                    await task
            await relay.close()
            await ports.emails.aclose()
            await redis.aclose()
            await engine.dispose()

    app = create_service_app(
        service="users",
        title="Emporium users",
        version=VERSION,
        description="Identity: accounts, sessions, roles and permissions, access-token keys.",
        settings=settings,
        lifespan=lifespan,
        routers=[auth, accounts, wellknown],
        health_checks={
            "postgres": postgres_check(engine),
            "redis": redis_check(redis),
            "rabbitmq": rabbitmq_check(settings.amqp_url),
        },
        domain_errors=DOMAIN_ERRORS,
        unavailable_errors=(*DATABASE_UNAVAILABLE_ERRORS, RedisError),
        exception_handlers=DATABASE_ERROR_HANDLERS,
    )
    USERS.install(
        app,
        UsersComponents(
            ports=ports,
            jwks_json=orjson.dumps(key.jwks()),
            user_cursors=CursorCodec(
                settings.cursor_secret.get_secret_value().encode(), scope="users"
            ),
            client_ips=ClientIpResolver(settings.trusted_proxies),
        ),
    )
    TOKEN_VERIFIER.install(app, TokenVerifier.from_keys({key.kid: key.public_key}))
    return app


async def _bootstrap_admin(ports: PortsAndPolicy, settings: UsersSettings) -> None:
    """Create the configured admin, retrying while the database is not reachable yet."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(DATABASE_UNAVAILABLE_ERRORS),
        wait=wait_random_exponential(multiplier=0.5, max=10),
        stop=stop_never,
    ):
        with attempt:
            await _create_admin(ports, settings)


async def _create_admin(ports: PortsAndPolicy, settings: UsersSettings) -> None:
    await bootstrap_admin(
        ports, email=settings.admin_email, password=settings.admin_password.get_secret_value()
    )


def app_from_environment() -> FastAPI:
    """uvicorn's factory: tracing first (engines made afterwards are traced), then the app."""
    configure_tracing("users")
    return create_app()
