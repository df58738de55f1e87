"""An upstream that is down, slow or failing gives a quick 503/504 naming it, never a hang."""

from __future__ import annotations

import asyncio
import time

from gateway_testkit import GatewayFactory, TestUpstream, Tokens, free_port


async def test_upstream_down_gives_503_naming_the_service_quickly(
    make_gateway: GatewayFactory,
) -> None:
    async with make_gateway(catalog_url=f"http://127.0.0.1:{free_port()}") as gw:
        started = time.monotonic()
        response = await gw.client.get("/api/v1/categories")
        elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["service"] == "catalog"
    assert "catalog" in body["detail"]
    assert body["type"].endswith("/upstream-unavailable")
    assert response.headers["retry-after"] == "5"
    assert elapsed < 0.5


async def test_services_not_built_yet_answer_503_naming_them(
    make_gateway: GatewayFactory, tokens: Tokens
) -> None:
    async with make_gateway(orders_url=f"http://127.0.0.1:{free_port()}") as gw:
        response = await gw.client.post(
            "/api/v1/orders", json={"items": []}, headers=tokens.bearer()
        )

    assert response.status_code == 503
    assert response.json()["service"] == "orders"


async def test_upstream_timeout_gives_504(
    make_gateway: GatewayFactory, upstream: TestUpstream, tokens: Tokens
) -> None:
    async with make_gateway(upstream_read_timeout_seconds=0.2) as gw:
        started = time.monotonic()
        response = await gw.client.get(
            "/api/v1/users/me", headers={**tokens.bearer(), "X-Test-Delay": "1"}
        )
        elapsed = time.monotonic() - started

    assert response.status_code == 504
    assert response.json()["service"] == "users"
    assert response.json()["type"].endswith("/upstream-timeout")
    assert elapsed < 0.9
    assert len(upstream.received) == 1  # a timeout is not retried


async def test_circuit_opens_after_consecutive_failures_and_fails_fast(
    make_gateway: GatewayFactory,
) -> None:
    async with make_gateway(
        catalog_url=f"http://127.0.0.1:{free_port()}",
        breaker_failure_threshold=3,
        breaker_reset_seconds=30,
        retry_attempts=1,
    ) as gw:
        failures = [(await gw.client.get("/api/v1/categories")).json()["type"] for _ in range(3)]
        opened = await gw.client.get("/api/v1/categories")

    assert all(kind.endswith("/upstream-unavailable") for kind in failures)
    assert opened.status_code == 503
    assert opened.json()["type"].endswith("/circuit-open")
    assert opened.json()["service"] == "catalog"
    assert 1 <= int(opened.headers["retry-after"]) <= 30


async def test_circuit_closes_again_after_a_successful_trial(
    make_gateway: GatewayFactory, upstream: TestUpstream, tokens: Tokens
) -> None:
    headers = {**tokens.bearer(), "X-Test-Delay": "0.3"}
    async with make_gateway(
        upstream_read_timeout_seconds=0.1, breaker_failure_threshold=2, breaker_reset_seconds=0.3
    ) as gw:
        for _ in range(2):
            assert (await gw.client.get("/api/v1/users/me", headers=headers)).status_code == 504
        opened = await gw.client.get("/api/v1/users/me", headers=tokens.bearer())
        await asyncio.sleep(0.35)
        trial = await gw.client.get("/api/v1/users/me", headers=tokens.bearer())
        after = await gw.client.get("/api/v1/users/me", headers=tokens.bearer())

    assert opened.json()["type"].endswith("/circuit-open")
    assert (trial.status_code, after.status_code) == (200, 200)


async def test_idempotent_requests_are_retried_on_connection_errors_only(
    make_gateway: GatewayFactory, upstream: TestUpstream, tokens: Tokens
) -> None:
    async with make_gateway() as gw:
        response = await gw.client.get(
            "/api/v1/users/me", headers={**tokens.bearer(), "X-Test-Status": "503"}
        )

    # a 503 from the service is the service's answer, passed on as is
    assert response.status_code == 503
    assert len(upstream.received) == 1
