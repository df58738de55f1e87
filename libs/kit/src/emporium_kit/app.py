"""Assembles a service's FastAPI application with the kit's cross-cutting parts."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from emporium_kit.health import HealthCheck, health_router
from emporium_kit.metrics import MetricsMiddleware, metrics_router
from emporium_kit.middleware import (
    BodyGuardMiddleware,
    HeadAsGetMiddleware,
    RequestContextMiddleware,
)
from emporium_kit.problems import (
    PROBLEM_JSON_SCHEMA,
    ErrorStatusMap,
    ExceptionHandler,
    install_problem_handlers,
)
from emporium_kit.settings import ServiceSettings
from emporium_kit.tracing import RouteSpanName, instrument_asgi


class Lifespan(Protocol):
    def __call__(self, app: FastAPI) -> AbstractAsyncContextManager[None]: ...


def frozen_after_start_up(lifespan: Lifespan) -> Lifespan:
    """``lifespan``, then ``gc.freeze()`` once start-up is done.

    Everything a service builds at start-up (modules, the app, its routes and
    schemas, pools) lives as long as the process. Frozen, the cyclic garbage
    collector stops walking those objects on every full collection; under
    load those walks took about 17 % of the gateway's CPU (docs/performance.md).
    Objects created afterwards are collected as usual.
    """

    @asynccontextmanager
    async def frozen(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()

    return frozen


PROBLEM_RESPONSE_SCHEMA: dict[str, Any] = {
    "content": {"application/problem+json": {"schema": PROBLEM_JSON_SCHEMA}}
}


@dataclass(frozen=True, slots=True)
class FastPath:
    """Requests under ``prefixes`` go to ``app`` behind the kit's middleware only.

    They skip FastAPI altogether: its error and exception middleware, its
    native telemetry wrapper and its router. The gateway's route table is such
    a path: pure ASGI, it answers its own 404, 405 and problems. Tracing is the
    same as FastAPI's stack has (:func:`~emporium_kit.tracing.instrument_asgi`).
    """

    prefixes: tuple[str, ...]
    app: ASGIApp


class _FastPathApp(FastAPI):
    """A FastAPI app that hands its fast path's requests to a prebuilt stack.

    Both stacks, FastAPI's and the fast path's, are traced the same way: behind
    :func:`~emporium_kit.tracing.instrument_asgi`, outermost.
    """

    fast_prefixes: tuple[str, ...] = ()
    fast_stack: ASGIApp | None = None
    sampled_flag_trusted_from: Sequence[str] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        return instrument_asgi(  # type: ignore[no-any-return]
            super().build_middleware_stack(),
            sampled_flag_trusted_from=self.sampled_flag_trusted_from,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast_stack is not None
            and scope["type"] == "http"
            and scope["path"].startswith(self.fast_prefixes)
        ):
            await self.fast_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def kit_middleware(
    *,
    service: str,
    settings: ServiceSettings,
    edge_middleware: Sequence[Middleware] = (),
    inner_middleware: Sequence[Middleware] = (),
) -> list[Middleware]:
    """The kit's request path, outermost first: request context (request id,
    security headers, access log, last-resort 500 problem), the service's edge
    middleware, metrics, the body guard (413, 415), HEAD as GET without content, the
    service's inner middleware."""
    return [
        Middleware(RequestContextMiddleware),
        *edge_middleware,
        Middleware(MetricsMiddleware, service=service),
        Middleware(BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes),
        Middleware(HeadAsGetMiddleware),
        *inner_middleware,
    ]


def wrap(app: ASGIApp, middleware: Sequence[Middleware]) -> ASGIApp:
    """``app`` inside ``middleware`` (outermost first), as Starlette would build it."""
    for layer in reversed(middleware):
        app = layer.cls(app, *layer.args, **layer.kwargs)
    return app


def create_service_app(
    *,
    service: str,
    title: str,
    version: str,
    description: str,
    settings: ServiceSettings,
    lifespan: Lifespan,
    routers: Sequence[APIRouter],
    health_checks: Mapping[str, HealthCheck],
    domain_errors: ErrorStatusMap | None = None,
    unavailable_errors: Sequence[type[BaseException]] = (),
    exception_handlers: Mapping[type[Exception], ExceptionHandler] | None = None,
    edge_middleware: Sequence[Middleware] = (),
    inner_middleware: Sequence[Middleware] = (),
    builtin_docs: bool = True,
    metrics_allowed_networks: Sequence[str] | None = None,
    trusted_proxies: Sequence[str] = (),
    fast_path: FastPath | None = None,
    sampled_flag_trusted_from: Sequence[str] | None = None,
) -> FastAPI:
    """A FastAPI app with the kit's edges.

    ``edge_middleware`` runs just inside the request context (so its refusals
    carry the request id and security headers) and outside everything else.
    ``inner_middleware`` runs inside every kit middleware, just before
    FastAPI's own exception handling and router (the gateway hands its route
    table's requests to the dispatcher there).
    ``unavailable_errors`` become 503 problems and ``exception_handlers`` are
    installed as they are: a service with a database passes the database
    part's ``DATABASE_UNAVAILABLE_ERRORS`` and ``DATABASE_ERROR_HANDLERS``, so
    this module loads no driver.
    ``builtin_docs=False`` drops FastAPI's CDN-based ``/docs`` and
    ``/openapi.json`` for a service that serves its own (the gateway).
    ``metrics_allowed_networks`` limits ``/metrics`` to those clients (404 for
    others); ``trusted_proxies`` says whose ``X-Forwarded-For`` decides that.
    ``fast_path`` (:class:`FastPath`) serves some prefixes outside FastAPI.
    ``sampled_flag_trusted_from``: whose ``traceparent`` "sampled" flag is
    followed (None: every caller's; see
    :func:`~emporium_kit.tracing.instrument_asgi`). A service at the edge
    passes its trusted proxies.
    """
    app = _FastPathApp(
        title=title,
        version=version,
        description=description,
        lifespan=frozen_after_start_up(lifespan),
        docs_url="/docs" if builtin_docs else None,
        redoc_url="/redoc" if builtin_docs else None,
        openapi_url="/openapi.json" if builtin_docs else None,
        responses={
            "4XX": {"description": "A problem document (RFC 9457)", **PROBLEM_RESPONSE_SCHEMA},
        },
        # Traces come from the kit's OpenTelemetry setup (emporium_kit.tracing) and
        # metrics from Prometheus: FastAPI's own telemetry would be a second, unused set.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.sampled_flag_trusted_from = sampled_flag_trusted_from
    install_problem_handlers(
        app,
        domain_errors,
        unavailable_errors=unavailable_errors,
    )
    for error, handler in (exception_handlers or {}).items():
        app.add_exception_handler(error, handler)
    app.include_router(health_router(health_checks, timeout=settings.health_check_timeout_seconds))
    app.include_router(
        metrics_router(
            settings.prometheus_multiproc_dir,
            allowed_networks=metrics_allowed_networks,
            trusted_proxies=trusted_proxies,
        )
    )
    for router in routers:
        app.include_router(router)
    stack = [
        *kit_middleware(
            service=service,
            settings=settings,
            edge_middleware=edge_middleware,
            inner_middleware=inner_middleware,
        ),
        # Innermost, next to the router: it names a recorded span by the route matched.
        Middleware(RouteSpanName),
    ]
    # add_middleware prepends: the last added runs first (outermost).
    for middleware in reversed(stack):
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    if fast_path is not None:
        fast_stack = kit_middleware(
            service=service, settings=settings, edge_middleware=edge_middleware
        )
        app.fast_prefixes = fast_path.prefixes
        app.fast_stack = instrument_asgi(
            wrap(fast_path.app, fast_stack), sampled_flag_trusted_from=sampled_flag_trusted_from
        )
    return app
