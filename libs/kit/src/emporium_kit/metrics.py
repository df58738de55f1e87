"""Prometheus metrics: requests by route template, status and latency.

Labels use the route template (``/api/v1/users/{user_id}``), never the raw
path, so cardinality stays bounded whatever clients send.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emporium_kit.client_ip import ClientIpResolver
from emporium_kit.problems import problem_response

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

# Distinct (method, route template, status) series kept looked up in one process.
_MAX_SERIES = 1024


class MetricsMiddleware:
    """Counts every request and times it, labelled by route template and status.

    The labelled series are looked up once per (method, template, status) and
    kept: ``labels()`` takes a lock and builds its key on every call, and a
    process sees few distinct combinations (the templates are bounded, and so
    are the methods a route accepts and the statuses it answers; an unmatched
    path is "unmatched" whatever it is).
    """

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _labelled(self, method: str, template: str, status: int) -> tuple[Any, Any]:
        key = (method, template, status)
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= _MAX_SERIES:
                # Methods come from clients: a flood of invented ones must not
                # grow this dictionary without bound (Prometheus keeps them anyway).
                self._series.clear()
            series = (
                HTTP_REQUESTS.labels(self.service, method, template, str(status)),
                HTTP_LATENCY.labels(self.service, method, template),
            )
            self._series[key] = series
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            requests, latency = self._labelled(scope["method"], template, status)
            requests.inc()
            latency.observe(time.perf_counter() - started)


def metrics_router(
    multiprocess_dir: str | None = None,
    *,
    allowed_networks: Sequence[str] | None = None,
    trusted_proxies: Sequence[str] = (),
) -> APIRouter:
    """``/metrics``; with ``multiprocess_dir``, the samples of every worker process.

    With ``allowed_networks``, only clients in those networks (resolved like
    every client IP, believing ``X-Forwarded-For`` from ``trusted_proxies``
    only) get the metrics; anyone else gets a 404, as if there were none.
    """
    registry = REGISTRY
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    networks = (
        None
        if allowed_networks is None
        else tuple(ipaddress.ip_network(cidr, strict=False) for cidr in allowed_networks)
    )
    resolver = ClientIpResolver(trusted_proxies)
    router = APIRouter(tags=["health"])

    def _allowed(request: Request) -> bool:
        if networks is None:
            return True
        peer = request.client.host if request.client else None
        client = resolver.resolve(peer, request.headers.getlist("x-forwarded-for"))
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in networks)

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if not _allowed(request):
            return problem_response(404, code="not-found", detail="No route matches this path.")
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
