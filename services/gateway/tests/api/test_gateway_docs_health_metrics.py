"""Merged OpenAPI, Swagger UI served locally, health and metrics."""

from __future__ import annotations

from typing import Any

import pytest
from gateway_testkit import Gateway, GatewayFactory, TestUpstream, free_port
from openapi_spec_validator import validate

from emporium_kit.middleware import DOCS_CSP
from gateway.composition import GATEWAY
from gateway.settings import GatewaySettings


async def test_merged_openapi_validates_and_covers_public_routes(gateway: Gateway) -> None:
    response = await gateway.client.get("/openapi.json")

    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    validate(spec)
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /api/v1/auth/login.",
    }
    me = spec["paths"]["/api/v1/users/me"]
    assert me["get"]["security"] == [{"bearerAuth": []}]
    assert me["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UserOut"
    }
    assert "UserOut" in spec["components"]["schemas"]
    assert spec["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    assert spec["paths"]["/api/v1/users"]["get"]["x-required-permission"] == "users:admin"
    # every public route is there, including those of services without a document yet
    assert "/api/v1/orders/{id}/cancel" in spec["paths"]
    assert "/health/ready" in spec["paths"]
    # internal routes of a service are not published
    assert "/internal/secret" not in spec["paths"]


async def test_openapi_keeps_the_last_document_of_a_service_that_went_down(
    make_gateway: GatewayFactory, upstream: TestUpstream
) -> None:
    async with make_gateway() as gw:
        catalog = GATEWAY.get(gw.app).openapi
        down = GATEWAY.get(gw.app).upstreams["users"]
        down.client.base_url = f"http://127.0.0.1:{free_port()}"
        await catalog.refresh()
        spec = (await gw.client.get("/openapi.json")).json()

    schema = spec["paths"]["/api/v1/users/me"]["get"]["responses"]["200"]
    assert schema["content"]["application/json"]["schema"]["$ref"].endswith("/UserOut")


async def test_docs_page_uses_local_assets_and_docs_csp(gateway: Gateway) -> None:
    page = await gateway.client.get("/docs")
    bundle = await gateway.client.get("/docs/assets/swagger-ui-bundle.js")
    css = await gateway.client.get("/docs/assets/swagger-ui.css")

    assert page.status_code == 200
    assert page.headers["content-security-policy"] == DOCS_CSP
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "/openapi.json" in page.text
    assert "https://" not in page.text
    assert "http://" not in page.text
    assert bundle.status_code == 200
    assert "javascript" in bundle.headers["content-type"]
    assert len(bundle.content) > 100_000
    assert css.status_code == 200


async def test_live_is_ok(gateway: Gateway) -> None:
    response = await gateway.client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_redis_and_required_upstreams(gateway: Gateway) -> None:
    response = await gateway.client.get("/health/ready")

    assert response.status_code == 200
    # By default every service `make run` starts (one stub stands in for all of them).
    assert response.json()["checks"] == {"redis": "ok", "users": "ok", "catalog": "ok", "ops": "ok"}


async def test_ready_is_503_naming_redis_when_it_is_down_while_requests_are_served(
    make_gateway: GatewayFactory,
) -> None:
    async with make_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0") as gw:
        ready = await gw.client.get("/health/ready")
        served = await gw.client.post("/api/v1/auth/logout", json={})

    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] == "down"
    assert "redis" in ready.json()["detail"]
    assert served.status_code == 200


async def test_ready_is_503_naming_a_required_upstream_that_is_not_ready(
    make_gateway: GatewayFactory, upstream: TestUpstream
) -> None:
    async with make_gateway(required_upstreams=("users",)) as gw:
        upstream.ready_status = 503
        response = await gw.client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"] == {"redis": "ok", "users": "down"}
    assert "users" in response.json()["detail"]


async def test_metrics_count_routes_rate_limits_cache_and_upstream_errors(
    make_gateway: GatewayFactory,
) -> None:
    async with make_gateway(
        rate_limit_anonymous="3/minute",
        orders_url=f"http://127.0.0.1:{free_port()}",
        client_ip="10.20.30.40",  # a private address: METRICS_ALLOWED_NETWORKS by default
    ) as gw:
        await gw.client.get("/api/v1/products")
        await gw.client.get("/api/v1/products")
        unavailable = await gw.client.post("/api/v1/payments/webhook", json={})
        limited = await gw.client.get("/api/v1/products")
        metrics = (await gw.client.get("/metrics")).text

    assert (unavailable.status_code, limited.status_code) == (503, 429)
    route = 'method="GET",route="/api/v1/products",service="gateway"'
    assert f'http_requests_total{{{route},status="200"}}' in metrics
    assert f'http_requests_total{{{route},status="429"}}' in metrics
    assert f"http_request_duration_seconds_count{{{route}}}" in metrics
    assert 'gateway_cache_lookups_total{result="hit_local"}' in metrics
    assert 'gateway_cache_lookups_total{result="miss"}' in metrics
    assert 'gateway_rate_limit_rejections_total{limit="anonymous"}' in metrics
    assert 'gateway_upstream_errors_total{kind="unavailable",service="orders"}' in metrics


@pytest.mark.parametrize(
    ("client_ip", "forwarded_for", "status"),
    [
        ("127.0.0.1", None, 200),
        ("192.168.4.2", None, 200),
        ("fd00::7", None, 200),
        ("203.0.113.9", None, 404),
        ("2001:db8::9", None, 404),
        # A public client cannot claim a private address from an untrusted peer.
        ("203.0.113.9", "10.0.0.1", 404),
    ],
)
async def test_metrics_answer_only_to_the_allowed_networks(
    make_gateway: GatewayFactory, client_ip: str, forwarded_for: str | None, status: int
) -> None:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with make_gateway(client_ip=client_ip) as gw:
        response = await gw.client.get("/metrics", headers=headers)

    assert response.status_code == status
    if status == 404:
        assert response.headers["content-type"] == "application/problem+json"
        assert "http_requests_total" not in response.text


async def test_metrics_allowed_networks_come_from_the_contract_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRICS_ALLOWED_NETWORKS", "198.51.100.0/24, 2001:db8::/32")
    assert GatewaySettings().metrics_allowed_networks == ("198.51.100.0/24", "2001:db8::/32")
