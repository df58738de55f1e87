"""What runs for as long as the gateway serves: started in order, stopped in reverse.

Start: the circuit breakers, a best-effort warm-up (signing keys and API
documents, so the first requests need not wait for them), then two background
tasks: the cache-invalidation listener and the OpenAPI refresher. Stop: the
tasks (the listener may finish a connection attempt in flight and close it
cleanly), then the upstream clients and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI

from emporium_kit.app import Lifespan
from gateway.cache_invalidation import CatalogEventsListener
from gateway.composition import GatewayComponents

log = structlog.get_logger(__name__)

_LISTENER_STOP_SECONDS = 6.0


def gateway_lifespan(components: GatewayComponents) -> Lifespan:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await components.breakers.initialize()
        await warm_up(components)
        listener = components.listener
        listening = asyncio.create_task(listener.run(), name="cache-invalidation")
        refreshing = asyncio.create_task(
            components.openapi.refresh_forever(components.settings.openapi_refresh_seconds),
            name="openapi-refresh",
        )
        try:
            yield
        finally:
            refreshing.cancel()
            await _stop_listening(listener, listening)
            await asyncio.gather(refreshing, listening, return_exceptions=True)
            await _close_clients(components)

    return lifespan


async def warm_up(components: GatewayComponents) -> None:
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


async def _stop_listening(listener: CatalogEventsListener, listening: asyncio.Task[None]) -> None:
    """Lets a connection attempt in flight finish, so it is closed cleanly; then cancels."""
    listener.stop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(listening), _LISTENER_STOP_SECONDS)
    listening.cancel()


async def _close_clients(components: GatewayComponents) -> None:
    await asyncio.gather(*(upstream.aclose() for upstream in components.upstreams.values()))
    await components.redis.aclose()
