"""Assembles a service's FastAPI application with the kit's cross-cutting parts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware

from emporium_kit.health import HealthCheck, health_router
from emporium_kit.metrics import MetricsMiddleware, metrics_router
from emporium_kit.middleware import BodyGuardMiddleware, RequestContextMiddleware
from emporium_kit.problems import (
    PROBLEM_JSON_SCHEMA,
    ErrorStatusMap,
    ExceptionHandler,
    install_problem_handlers,
)
from emporium_kit.settings import ServiceSettings
from emporium_kit.tracing import instrument_app


class Lifespan(Protocol):
    def __call__(self, app: FastAPI) -> AbstractAsyncContextManager[None]: ...


PROBLEM_RESPONSE_SCHEMA: dict[str, Any] = {
    "content": {"application/problem+json": {"schema": PROBLEM_JSON_SCHEMA}}
}


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
    """
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        docs_url="/docs" if builtin_docs else None,
        redoc_url="/redoc" if builtin_docs else None,
        openapi_url="/openapi.json" if builtin_docs else None,
        responses={
            "4XX": {"description": "A problem document (RFC 9457)", **PROBLEM_RESPONSE_SCHEMA},
        },
    )
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
    # add_middleware prepends: the last added runs first (outermost).
    for middleware in reversed(inner_middleware):
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, service=service)
    for middleware in reversed(edge_middleware):
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    app.add_middleware(RequestContextMiddleware)
    instrument_app(app)
    return app
