"""The pieces of the kit's request edge that every answer passes through, one by one."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

from emporium_kit import metrics
from emporium_kit.logging import add_timestamp
from emporium_kit.metrics import MetricsMiddleware
from emporium_kit.middleware import API_CSP, edge_headers


def _names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def test_edge_headers_add_the_request_id_and_every_security_header() -> None:
    answered = edge_headers([(b"content-type", b"application/json")], b"req-1", b"csp")

    assert answered[0] == (b"content-type", b"application/json")
    assert (b"x-request-id", b"req-1") in answered
    assert (b"x-content-type-options", b"nosniff") in answered
    assert (b"content-security-policy", b"csp") in answered
    assert len(set(_names(answered))) == len(answered)


def test_edge_headers_keep_what_the_application_set_but_replace_its_id_and_banner() -> None:
    answered = edge_headers(
        [
            (b"Server", b"uvicorn"),
            (b"x-request-id", b"made-up"),
            (b"X-Frame-Options", b"SAMEORIGIN"),
            (b"content-security-policy", b"default-src 'self'"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ],
        b"req-2",
        API_CSP.encode(),
    )

    lowered = [name.lower() for name in _names(answered)]
    assert b"server" not in lowered
    assert [v for n, v in answered if n == b"x-request-id"] == [b"req-2"]
    assert lowered.count(b"x-frame-options") == 1
    assert (b"X-Frame-Options", b"SAMEORIGIN") in answered
    assert [v for n, v in answered if n == b"content-security-policy"] == [b"default-src 'self'"]
    assert [v for n, v in answered if n == b"set-cookie"] == [b"a=1", b"b=2"]


def test_the_timestamp_is_iso_8601_utc_with_microseconds() -> None:
    before = datetime.now(UTC)
    stamped = add_timestamp(None, "info", {})["timestamp"]
    after = datetime.now(UTC)

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamped)
    at = datetime.fromisoformat(stamped.replace("Z", "+00:00"))
    assert before.replace(microsecond=0) <= at <= after


async def test_metrics_keep_one_series_per_method_route_and_status(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    requests = Counter(
        "t_requests", "", ["service", "method", "route", "status"], registry=registry
    )
    latency = Histogram("t_latency", "", ["service", "method", "route"], registry=registry)
    monkeypatch.setattr(metrics, "HTTP_REQUESTS", requests)
    monkeypatch.setattr(metrics, "HTTP_LATENCY", latency)
    monkeypatch.setattr(metrics, "_MAX_SERIES", 2)
    statuses = iter([200, 200, 404, 200, 500])

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": next(statuses), "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def discard(message):  # type: ignore[no-untyped-def]
        return None

    middleware = MetricsMiddleware(app, service="svc")
    for _ in range(5):
        scope = {"type": "http", "method": "GET", "path": "/x"}
        await middleware(scope, discard, discard)

    def count(status: str) -> float:
        value = registry.get_sample_value(
            "t_requests_total",
            {"service": "svc", "method": "GET", "route": "unmatched", "status": status},
        )
        return value or 0.0

    assert (count("200"), count("404"), count("500")) == (3.0, 1.0, 1.0)
    assert (
        registry.get_sample_value(
            "t_latency_count", {"service": "svc", "method": "GET", "route": "unmatched"}
        )
        == 5.0
    )
    assert len(middleware._series) <= 2  # the cap held: a third series emptied it first
