"""The composition root: builds the gateway from its settings. No I/O at import.

Request path, outermost first: the kit's RequestContextMiddleware (request id,
security headers, access log), the gateway's EdgeGuardMiddleware (431, path
tricks), the kit's MetricsMiddleware and BodyGuardMiddleware (413, 415), then
FastAPI's router: the gateway's own routes (health, metrics, docs) and, for
everything else, the pure ASGI :class:`GatewayDispatcher`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from redis.asyncio import Redis
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from emporium_kit.app import create_service_app
from emporium_kit.client_ip import ClientIpResolver
from emporium_kit.health import HealthCheck, redis_check
from emporium_kit.identity.revocations import RevocationList
from emporium_kit.identity.tokens import TokenVerifier, http_jwks_fetcher
from emporium_kit.logging import configure_logging
from emporium_kit.tracing import configure_tracing
from gateway.cache import CachedPages, ResponseCache
from gateway.cache_invalidation import CatalogEventsListener
from gateway.dispatch import GatewayDispatcher, RouteTableFirst
from gateway.docs import docs_assets, docs_router
from gateway.edge import EdgeGuardMiddleware
from gateway.identity import Authenticator
from gateway.openapi_merge import OpenApiCatalog
from gateway.proxy import Upstream, UpstreamTimeouts, circuit_breakers
from gateway.ratelimit import RateLimiter
from gateway.redis_guard import RedisGuard
from gateway.routes import RouteTable, default_route_table
from gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)

TITLE = "Emporium API"
DESCRIPTION = (
    "The public API of Emporium, through its gateway. Errors are RFC 9457 problem "
    "documents; every response carries `X-Request-ID`; rate limits are announced in "
    "`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`."
)
# FastAPI's own docs routes load Swagger UI from a CDN; the gateway serves its own.
# Revocation keys are written by users; the gateway only reads them.
_REVOCATION_TTL_SECONDS = 900
_LISTENER_STOP_SECONDS = 6.0


@dataclass(frozen=True, slots=True)
class GatewayComponents:
    """What the lifespan starts and stops; exposed on ``app.state.gateway``."""

    settings: GatewaySettings
    redis: Redis
    upstreams: Mapping[str, Upstream]
    verifier: TokenVerifier
    limiter: RateLimiter
    cache: ResponseCache
    listener: CatalogEventsListener
    openapi: OpenApiCatalog
    table: RouteTable


def _service_version() -> str:
    try:
        return package_version("emporium-gateway")
    except Exception:  # running from a source tree without metadata
        return "0.0.0"


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    version = _service_version()
    table = default_route_table()

    redis = Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds,
    )
    redis_guard = RedisGuard(retry_seconds=settings.redis_retry_seconds)
    breakers = circuit_breakers(
        threshold=settings.breaker_failure_threshold,
        reset_seconds=settings.breaker_reset_seconds,
    )
    timeouts = UpstreamTimeouts(
        connect=settings.upstream_connect_timeout_seconds,
        read=settings.upstream_read_timeout_seconds,
        write=settings.upstream_write_timeout_seconds,
        pool=settings.upstream_pool_timeout_seconds,
    )
    upstreams = {
        name: Upstream(
            name,
            url,
            timeouts=timeouts,
            max_connections=settings.upstream_max_connections,
            max_keepalive=settings.upstream_max_keepalive,
            breakers=breakers,
            retry_attempts=settings.retry_attempts,
            retry_backoff_seconds=settings.retry_backoff_seconds,
            breaker_reset_seconds=settings.breaker_reset_seconds,
        )
        for name, url in settings.upstream_urls().items()
    }
    verifier = TokenVerifier(
        http_jwks_fetcher(upstreams["users"].client, settings.jwks_path),
        leeway_seconds=settings.token_leeway_seconds,
        min_refresh_interval=settings.jwks_min_refresh_seconds,
    )
    authenticator = Authenticator(
        verifier,
        RevocationList(redis, ttl_seconds=_REVOCATION_TTL_SECONDS),
        redis_guard,
        fail_mode=settings.revocation_fail_mode,
    )
    limiter = RateLimiter(
        redis,
        redis_guard,
        key_prefix=settings.redis_key_prefix,
        anonymous=settings.rate_limit_anonymous,
        user=settings.rate_limit_user,
        auth=settings.rate_limit_auth,
    )
    cache = ResponseCache(
        redis,
        redis_guard,
        key_prefix=settings.redis_key_prefix,
        ttl_seconds=settings.cache_ttl_seconds,
        max_body_bytes=settings.cache_max_body_bytes,
        local_entries=settings.cache_local_entries,
        local_ttl_seconds=settings.cache_local_ttl_seconds,
    )
    listener = CatalogEventsListener(
        cache,
        amqp_url=settings.amqp_url,
        exchange=settings.events_exchange,
        binding_key=settings.cache_invalidation_binding,
        reconnect_seconds=settings.amqp_reconnect_seconds,
    )
    dispatcher = GatewayDispatcher(
        table=table,
        upstreams=upstreams,
        authenticator=authenticator,
        limiter=limiter,
        pages=CachedPages(cache),
        client_ips=ClientIpResolver(settings.trusted_proxies),
    )

    own_routes: list[BaseRoute] = []

    @functools.cache
    def gateway_spec() -> Mapping[str, Any]:
        return get_openapi(title=TITLE, version=version, routes=own_routes)

    openapi = OpenApiCatalog(
        upstreams,
        table,
        gateway_spec=gateway_spec,
        title=TITLE,
        version=version,
        description=DESCRIPTION,
        fetch_timeout_seconds=settings.health_check_timeout_seconds,
    )
    components = GatewayComponents(
        settings=settings,
        redis=redis,
        upstreams=upstreams,
        verifier=verifier,
        limiter=limiter,
        cache=cache,
        listener=listener,
        openapi=openapi,
        table=table,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await breakers.initialize()
        await _warm_up(components)
        listening = asyncio.create_task(listener.run(), name="cache-invalidation")
        refreshing = asyncio.create_task(
            openapi.refresh_forever(settings.openapi_refresh_seconds), name="openapi-refresh"
        )
        try:
            yield
        finally:
            refreshing.cancel()
            # Let a connection attempt in flight finish, then close it cleanly.
            listener.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(listening), _LISTENER_STOP_SECONDS)
            listening.cancel()
            await asyncio.gather(refreshing, listening, return_exceptions=True)
            await asyncio.gather(*(upstream.aclose() for upstream in upstreams.values()))
            await redis.aclose()

    health_checks: dict[str, HealthCheck] = {"redis": redis_check(redis)}
    for name in settings.required_upstreams:
        health_checks[name] = functools.partial(
            upstreams[name].ready, settings.health_check_timeout_seconds
        )

    app = create_service_app(
        service="gateway",
        title=TITLE,
        version=version,
        description=DESCRIPTION,
        settings=settings,
        lifespan=lifespan,
        routers=[],
        health_checks=health_checks,
        edge_middleware=[
            Middleware(EdgeGuardMiddleware, max_header_bytes=settings.max_header_bytes)
        ],
        inner_middleware=[
            Middleware(RouteTableFirst, dispatcher=dispatcher, prefixes=table.path_prefixes())
        ],
        builtin_docs=False,
        metrics_allowed_networks=settings.metrics_allowed_networks,
        trusted_proxies=settings.trusted_proxies,
    )
    app.include_router(docs_router(openapi, title=TITLE))
    own_routes.extend(app.router.routes)
    app.router.routes.append(docs_assets())
    app.state.gateway = components
    return app


async def _warm_up(components: GatewayComponents) -> None:
    """Best effort: keys and docs now, so the first requests need not wait for them."""
    timeout = components.settings.health_check_timeout_seconds
    try:
        await asyncio.wait_for(components.verifier.refresh(), timeout)
    except Exception as exc:  # users may start after us; unknown kids refresh later
        log.warning("jwks_unavailable_at_start", error=repr(exc))
    try:
        await asyncio.wait_for(components.openapi.refresh(), timeout + 1)
    except Exception as exc:
        log.warning("openapi_unavailable_at_start", error=repr(exc))


def app_from_environment() -> FastAPI:
    """uvicorn's factory: settings from the environment, logging configured."""
    settings = GatewaySettings()
    configure_logging("gateway", level=settings.log_level, json=settings.log_json)
    configure_tracing("gateway")
    return create_app(settings)
