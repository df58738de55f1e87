"""The catalogue service's composition root: ``create_app()`` wires adapters into use cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import httpx
import structlog
from fastapi import FastAPI
from starlette.middleware import Middleware

from catalog.adapters.db.tables import outbox
from catalog.adapters.db.unit_of_work import SqlUnitOfWorkFactory
from catalog.adapters.exchange_rates import (
    ExchangeRatePriceConverter,
    exchange_rates,
    rates_redis,
)
from catalog.domain import errors
from catalog.entrypoints.http.components import CATALOG, CatalogComponents
from catalog.entrypoints.http.fast_reads import CatalogueReads
from catalog.entrypoints.http.routes import categories, internal, products
from catalog.settings import CatalogSettings
from catalog.use_cases.display_price import DisplayPricesAtCurrentRates
from catalog.use_cases.ports import CatalogPorts, DisplayPrices
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
from emporium_kit.messaging.relay import OutboxRelay
from emporium_kit.pagination import CursorCodec, InvalidCursor
from emporium_kit.tracing import configure_tracing

VERSION = "1.0.0"
log = structlog.get_logger(__name__)

DOMAIN_ERRORS: dict[type[Exception], int] = {
    errors.CategoryNotFound: 404,
    errors.ParentCategoryNotFound: 422,
    errors.SlugTaken: 409,
    errors.CategoryCycle: 409,
    errors.CategoryNotEmpty: 409,
    errors.ProductNotFound: 404,
    errors.ProductCategoryNotFound: 422,
    errors.SkuTaken: 409,
    errors.StockBelowReserved: 409,
    errors.InvalidPriceRange: 422,
    InvalidCursor: 400,
}


def create_app(
    settings: CatalogSettings | None = None, *, display_prices: DisplayPrices | None = None
) -> FastAPI:
    """The catalogue app. ``display_prices`` converts prices for ``?currency=`` reads
    (by default at the rates the worker keeps in Redis; tests may pass their own)."""
    settings = settings or CatalogSettings()
    configure_logging("catalog", level=settings.log_level, json=settings.log_json)

    engine = create_engine(settings.database, application_name="catalog")
    uow = SqlUnitOfWorkFactory(engine)
    redis = rates_redis(settings, for_reads=True)
    rates = exchange_rates(settings, redis, for_reads=True)
    if display_prices is None:
        display_prices = DisplayPricesAtCurrentRates(
            ExchangeRatePriceConverter(rates), timeout_seconds=settings.fx_read_timeout_seconds
        )
    ports = CatalogPorts(uow=uow, display_prices=display_prices)
    users = httpx.AsyncClient(timeout=settings.users_timeout_seconds)
    verifier = TokenVerifier(
        http_jwks_fetcher(users, settings.jwks_url),
        min_refresh_interval=settings.jwks_min_refresh_seconds,
    )
    # Published rows are pruned by the worker's scheduled job, not by the relay.
    relay = OutboxRelay(
        engine, outbox, settings.amqp_url, name="catalog-outbox", purge_interval=None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background: list[asyncio.Task[object]] = []
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
            await rates.aclose()
            await redis.aclose()
            await users.aclose()
            await engine.dispose()

    app = create_service_app(
        service="catalog",
        title="Emporium catalogue",
        version=VERSION,
        description="Categories, products, stock and search.",
        settings=settings,
        lifespan=lifespan,
        routers=[categories, products, internal],
        health_checks={
            "postgres": postgres_check(engine),
            "rabbitmq": rabbitmq_check(settings.amqp_url),
        },
        domain_errors=DOMAIN_ERRORS,
        unavailable_errors=DATABASE_UNAVAILABLE_ERRORS,
        exception_handlers=DATABASE_ERROR_HANDLERS,
        inner_middleware=[Middleware(CatalogueReads)],
    )
    CATALOG.install(
        app,
        CatalogComponents(
            ports=ports,
            product_cursors=CursorCodec(
                settings.cursor_secret.get_secret_value().encode(), scope="catalog.products"
            ),
        ),
    )
    TOKEN_VERIFIER.install(app, verifier)
    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory: tracing first (engines and clients made afterwards are traced)."""
    configure_tracing("catalog")
    return create_app()
