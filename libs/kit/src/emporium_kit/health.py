"""Liveness and readiness endpoints.

``/health/live`` says the process answers. ``/health/ready`` runs every
dependency check concurrently, each under a timeout, and answers 503 naming the
ones that failed, so an orchestrator stops routing to a replica that cannot work.

The checks live with their parts, so this module loads no driver:
``emporium_kit.database.postgres_check``, ``emporium_kit.messaging.rabbitmq_check``
and :func:`redis_check` here (any client with ``ping``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import structlog
from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from emporium_kit.problems import problem_response

HealthCheck = Callable[[], Awaitable[object]]

log = structlog.get_logger(__name__)


class Pingable(Protocol):
    """A client that answers ``ping`` (redis-py's ``Redis``), so this module needs no driver."""

    def ping(self, **kwargs: Any) -> Awaitable[object]: ...


def redis_check(redis: Pingable) -> HealthCheck:
    async def check() -> None:
        await redis.ping()

    return check


async def run_checks(checks: Mapping[str, HealthCheck], timeout_seconds: float) -> dict[str, str]:
    async def one(name: str, check: HealthCheck) -> tuple[str, str]:
        try:
            await asyncio.wait_for(check(), timeout_seconds)
        except TimeoutError:
            return name, "timeout"
        except Exception as exc:  # any failure means "not ready"
            log.warning("health_check_failed", dependency=name, error=repr(exc))
            return name, "down"
        return name, "ok"

    results = await asyncio.gather(*(one(name, check) for name, check in checks.items()))
    return dict(results)


def health_router(checks: Mapping[str, HealthCheck], *, timeout: float = 2.0) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live", summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/health/ready",
        summary="Every dependency answers",
        responses={503: {"description": "A dependency is down; `checks` names it."}},
    )
    async def ready() -> Response:
        results = await run_checks(checks, timeout)
        failed = sorted(name for name, state in results.items() if state != "ok")
        if failed:
            body: dict[str, Any] = {"checks": results}
            return problem_response(
                503,
                code="not-ready",
                detail=f"Not ready: {', '.join(failed)} unavailable.",
                **body,
            )
        return JSONResponse({"status": "ok", "checks": results})

    return router
