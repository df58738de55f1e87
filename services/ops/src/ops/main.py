"""The ops service's composition root: ``create_app()`` wires adapters into use cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import httpx
import structlog
from fastapi import FastAPI
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_random_exponential

from emporium_kit.app import create_service_app
from emporium_kit.database import (
    DATABASE_ERROR_HANDLERS,
    DATABASE_UNAVAILABLE_ERRORS,
    create_engine,
    postgres_check,
)
from emporium_kit.identity import TOKEN_VERIFIER, TokenVerifier, http_jwks_fetcher
from emporium_kit.logging import configure_logging
from emporium_kit.messaging import rabbitmq_check
from emporium_kit.pagination import CursorCodec, InvalidCursor
from emporium_kit.tracing import configure_tracing
from ops.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from ops.adapters.replay_publisher import RabbitReplayPublisher
from ops.domain import errors
from ops.entrypoints.consumers.dead_letters import DeadLetterConsumer
from ops.entrypoints.http.components import OPS, OpsComponents
from ops.entrypoints.http.routes import dead_letters
from ops.settings import OpsSettings
from ops.use_cases.ports import OpsPorts

VERSION = "1.0.0"
log = structlog.get_logger(__name__)

DOMAIN_ERRORS: dict[type[Exception], int] = {
    errors.DeadLetterNotFound: 404,
    errors.AlreadyReplayed: 409,
    errors.NotReplayable: 409,
    errors.OriginalQueueGone: 409,
    InvalidCursor: 400,
}


def create_app(settings: OpsSettings | None = None) -> FastAPI:
    settings = settings or OpsSettings()
    configure_logging("ops", level=settings.log_level, json=settings.log_json)

    engine = create_engine(settings.database, application_name="ops")
    uow = SqlUnitOfWorkFactory(engine)
    publisher = RabbitReplayPublisher(
        settings.amqp_url, timeout_seconds=settings.broker_timeout_seconds
    )
    ports = OpsPorts(uow=uow, publisher=publisher)
    users = httpx.AsyncClient(timeout=settings.users_timeout_seconds)
    verifier = TokenVerifier(
        http_jwks_fetcher(users, settings.jwks_url),
        min_refresh_interval=settings.jwks_min_refresh_seconds,
    )
    consumer = DeadLetterConsumer(
        settings.amqp_url,
        uow=uow,
        queue=settings.dead_letters_queue,
        prefetch=settings.consumer_prefetch,
        connect_timeout=settings.broker_timeout_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background: list[asyncio.Task[object]] = []
        if settings.run_dead_letter_consumer:
            try:
                await consumer.start()
            except Exception as exc:  # the broker is down: serve anyway, consume once it is up
                log.warning("dead_letter_consumer_deferred", error=repr(exc))
                background.append(
                    asyncio.create_task(_start_consumer(consumer), name="dead-letter-consumer")
                )
        try:
            yield
        finally:
            # Uvicorn has stopped taking requests and finished in-flight ones. A
            # dead letter being stored finishes; one cut short is delivered again.
            await consumer.stop()
            for task in background:
                task.cancel()
            for task in background:
                with suppress(asyncio.CancelledError):
                    await task
            await consumer.stop()  # in case the deferred start connected meanwhile
            await publisher.close()
            await users.aclose()
            await engine.dispose()

    app = create_service_app(
        service="ops",
        title="Emporium ops",
        version=VERSION,
        description="Operations: every service's dead letters, listed and replayed (ADR 0013).",
        settings=settings,
        lifespan=lifespan,
        routers=[dead_letters],
        health_checks={
            "postgres": postgres_check(engine),
            "rabbitmq": rabbitmq_check(settings.amqp_url),
        },
        domain_errors=DOMAIN_ERRORS,
        unavailable_errors=DATABASE_UNAVAILABLE_ERRORS,
        exception_handlers=DATABASE_ERROR_HANDLERS,
    )
    OPS.install(
        app,
        OpsComponents(
            ports=ports,
            dead_letter_cursors=CursorCodec(
                settings.cursor_secret.get_secret_value().encode(), scope="ops.dead-letters"
            ),
        ),
    )
    TOKEN_VERIFIER.install(app, verifier)
    return app


async def _start_consumer(consumer: DeadLetterConsumer) -> None:
    """Start ``consumer``, retrying while the broker is not reachable."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_random_exponential(multiplier=0.5, max=10),
        stop=stop_never,
    ):
        with attempt:
            await consumer.start()
    log.info("dead_letter_consumer_started_late")


def app_from_environment() -> FastAPI:
    """uvicorn's factory: tracing first (clients made afterwards are traced), then the app."""
    configure_tracing("ops")
    return create_app()
