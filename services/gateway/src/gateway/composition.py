"""Builds the gateway's parts from its settings, once, into :class:`GatewayComponents`.

Nothing here does I/O: clients are made but not connected (the lifespan,
:mod:`gateway.lifespan`, starts and stops them). The composition root
(:mod:`gateway.main`) installs the result in the :data:`GATEWAY` slot, where
tests and dependencies read it typed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from purgatory import AsyncCircuitBreakerFactory
from redis.asyncio import Redis

from emporium_kit.client_ip import ClientIpResolver
from emporium_kit.health import HealthCheck, redis_check
from emporium_kit.identity.revocations import RevocationList
from emporium_kit.identity.tokens import TokenVerifier, http_jwks_fetcher
from emporium_kit.wiring import AppSlot
from gateway.authentication import Authenticator
from gateway.cache import CachedPages, ResponseCache
from gateway.cache_invalidation import CatalogEventsListener
from gateway.dispatch import GatewayDispatcher
from gateway.docs import DESCRIPTION, TITLE
from gateway.openapi_merge import OpenApiCatalog
from gateway.proxy import Upstream, UpstreamTimeouts, circuit_breakers
from gateway.ratelimit import RateLimiter
from gateway.redis_guard import RedisGuard
from gateway.redis_turn import RedisTurn
from gateway.routes import RouteTable, default_route_table
from gateway.settings import GatewaySettings

# Revocation keys are written by users; the gateway only reads them.
_REVOCATION_TTL_SECONDS = 900


@dataclass(frozen=True, slots=True)
class GatewayComponents:
    """Every long-lived part of one gateway app; the lifespan starts and stops them."""

    settings: GatewaySettings
    table: RouteTable
    redis: Redis
    breakers: AsyncCircuitBreakerFactory
    upstreams: Mapping[str, Upstream]
    verifier: TokenVerifier
    limiter: RateLimiter
    cache: ResponseCache
    listener: CatalogEventsListener
    openapi: OpenApiCatalog
    dispatcher: GatewayDispatcher


GATEWAY: AppSlot[GatewayComponents] = AppSlot("gateway")


def build_components(
    settings: GatewaySettings,
    *,
    version: str,
    gateway_spec: Callable[[], Mapping[str, Any]],
) -> GatewayComponents:
    """``gateway_spec`` gives the OpenAPI of the gateway's own routes, merged into the API's."""
    table = default_route_table()
    redis = redis_client(settings)
    redis_guard = RedisGuard(retry_seconds=settings.redis_retry_seconds)
    breakers = circuit_breakers(
        threshold=settings.breaker_failure_threshold,
        reset_seconds=settings.breaker_reset_seconds,
    )
    upstreams = upstream_clients(settings, breakers)
    verifier = TokenVerifier(
        http_jwks_fetcher(upstreams["users"].client, settings.jwks_path),
        leeway_seconds=settings.token_leeway_seconds,
        min_refresh_interval=settings.jwks_min_refresh_seconds,
    )
    # Every Redis call of the request path in one script call per event-loop turn.
    turn = RedisTurn(redis, key_prefix=settings.redis_key_prefix)
    limiter = RateLimiter(
        turn,
        redis_guard,
        key_prefix=settings.redis_key_prefix,
        anonymous=settings.rate_limit_anonymous,
        user=settings.rate_limit_user,
        auth=settings.rate_limit_auth,
    )
    cache = response_cache(settings, redis, turn, redis_guard)
    dispatcher = GatewayDispatcher(
        table=table,
        upstreams=upstreams,
        authenticator=Authenticator(
            verifier,
            RevocationList(redis, ttl_seconds=_REVOCATION_TTL_SECONDS),
            redis_guard,
            fail_mode=settings.revocation_fail_mode,
        ),
        limiter=limiter,
        pages=CachedPages(cache),
        client_ips=ClientIpResolver(settings.trusted_proxies),
    )
    return GatewayComponents(
        settings=settings,
        table=table,
        redis=redis,
        breakers=breakers,
        upstreams=upstreams,
        verifier=verifier,
        limiter=limiter,
        cache=cache,
        listener=CatalogEventsListener(
            cache,
            amqp_url=settings.amqp_url,
            exchange=settings.events_exchange,
            binding_key=settings.cache_invalidation_binding,
            reconnect_seconds=settings.amqp_reconnect_seconds,
        ),
        openapi=OpenApiCatalog(
            upstreams,
            table,
            gateway_spec=gateway_spec,
            title=TITLE,
            version=version,
            description=DESCRIPTION,
            fetch_timeout_seconds=settings.health_check_timeout_seconds,
        ),
        dispatcher=dispatcher,
    )


def redis_client(settings: GatewaySettings) -> Redis:
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds,
    )


def upstream_clients(
    settings: GatewaySettings, breakers: AsyncCircuitBreakerFactory
) -> dict[str, Upstream]:
    timeouts = UpstreamTimeouts(
        connect=settings.upstream_connect_timeout_seconds,
        read=settings.upstream_read_timeout_seconds,
        write=settings.upstream_write_timeout_seconds,
        pool=settings.upstream_pool_timeout_seconds,
    )
    return {
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


def response_cache(
    settings: GatewaySettings, redis: Redis, turn: RedisTurn, guard: RedisGuard
) -> ResponseCache:
    return ResponseCache(
        redis,
        turn,
        guard,
        ttl_seconds=settings.cache_ttl_seconds,
        max_body_bytes=settings.cache_max_body_bytes,
        local_entries=settings.cache_local_entries,
        local_ttl_seconds=settings.cache_local_ttl_seconds,
    )


def health_checks(components: GatewayComponents) -> dict[str, HealthCheck]:
    """Readiness: Redis, and every upstream the settings say is required."""
    settings = components.settings
    checks: dict[str, HealthCheck] = {"redis": redis_check(components.redis)}
    for name in settings.required_upstreams:
        checks[name] = functools.partial(
            components.upstreams[name].ready, settings.health_check_timeout_seconds
        )
    return checks
