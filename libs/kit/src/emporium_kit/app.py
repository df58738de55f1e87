"""Assembles a service's FastAPI application with the kit's cross-cutting parts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI

from emporium_kit.health import HealthCheck, health_router
from emporium_kit.metrics import MetricsMiddleware, metrics_router
from emporium_kit.middleware import BodyGuardMiddleware, RequestContextMiddleware
from emporium_kit.problems import ErrorStatusMap, install_problem_handlers
from emporium_kit.settings import ServiceSettings


class Lifespan(Protocol):
    def __call__(self, app: FastAPI) -> AbstractAsyncContextManager[None]: ...


PROBLEM_RESPONSE_SCHEMA: dict[str, Any] = {
    "content": {
        "application/problem+json": {
            "schema": {
                "type": "object",
                "required": ["type", "title", "status", "detail", "request_id"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "request_id": {"type": "string"},
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "loc": {"type": "array", "items": {}},
                                "msg": {"type": "string"},
                                "type": {"type": "string"},
                            },
                        },
                    },
                },
            }
        }
    }
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
) -> FastAPI:
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        responses={
            "4XX": {"description": "A problem document (RFC 9457)", **PROBLEM_RESPONSE_SCHEMA},
        },
    )
    install_problem_handlers(app, domain_errors, unavailable_errors=unavailable_errors)
    app.include_router(health_router(health_checks, timeout=settings.health_check_timeout_seconds))
    app.include_router(metrics_router())
    for router in routers:
        app.include_router(router)
    # add_middleware prepends: the last added runs first (outermost).
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, service=service)
    app.add_middleware(RequestContextMiddleware)
    return app
