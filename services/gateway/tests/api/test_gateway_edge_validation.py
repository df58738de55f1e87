"""Hostile or malformed requests get a 4xx problem at the edge and are never forwarded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gateway_testkit import (
    Gateway,
    GatewayFactory,
    TestUpstream,
    Tokens,
    free_port,
    gateway_settings,
    raw_http,
)

from emporium_kit.serving import BOUNDED_HTTPTOOLS
from emporium_testkit.processes import serve_in_process
from gateway.main import create_app
from gateway.settings import GatewaySettings


async def test_oversized_body_is_413(gateway: Gateway, upstream: TestUpstream) -> None:
    response = await gateway.client.post(
        "/api/v1/auth/login",
        content=b'{"email": "' + b"a" * 1_100_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert upstream.received == []


async def test_non_json_body_is_415(gateway: Gateway, upstream: TestUpstream) -> None:
    response = await gateway.client.post(
        "/api/v1/auth/login", content=b"email=a", headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 415
    assert upstream.received == []


async def test_malformed_json_is_400(gateway: Gateway, upstream: TestUpstream) -> None:
    response = await gateway.client.post(
        "/api/v1/auth/login",
        content=b'{"email": "a@example.com",',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["type"].endswith("/malformed-json")
    assert upstream.received == []


async def test_oversized_headers_are_431(gateway: Gateway, upstream: TestUpstream) -> None:
    response = await gateway.client.get("/api/v1/products", headers={"X-Big": "x" * 17_000})

    assert response.status_code == 431
    assert response.headers["content-type"] == "application/problem+json"
    assert upstream.received == []


@pytest.fixture
async def served_gateway(upstream: TestUpstream) -> AsyncIterator[int]:
    """The gateway on a real uvicorn (the kit's bounded httptools), as ``python -m gateway``."""
    settings: GatewaySettings = gateway_settings(upstream)
    port = free_port()
    async with serve_in_process(
        create_app(settings),
        port,
        http=BOUNDED_HTTPTOOLS,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
    ):
        yield port


PATH_TRICKS = [
    b"/api/v1/../internal/secret",
    b"/api/v1/products/../../internal/secret",
    b"/api/v1/users/me/%2e%2e/%2e%2e/%2e%2e/internal/secret",
    b"/api/v1/products/a%2Fb",
    b"/api/v1/products/a%2fb",
    b"/api/v1/products/a%5Cb",
    b"//api/v1/products",
    b"/api/v1//products",
    b"/api/v1/products/%00",
    b"/api/v1/./products",
]


@pytest.mark.parametrize("path", PATH_TRICKS)
async def test_path_tricks_are_refused_and_never_reach_the_upstream(
    served_gateway: int, upstream: TestUpstream, path: bytes
) -> None:
    status, headers, _ = await raw_http(
        served_gateway,
        b"GET " + path + b" HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n",
    )

    assert status in (400, 404)
    assert headers["content-type"] == "application/problem+json"
    assert "server" not in headers
    assert upstream.received == []


async def test_real_server_sends_no_server_header_and_security_headers(
    served_gateway: int, upstream: TestUpstream, tokens: Tokens
) -> None:
    token = tokens.issue()
    status, headers, _ = await raw_http(
        served_gateway,
        b"GET /api/v1/users/me HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
        + f"Authorization: Bearer {token}\r\n\r\n".encode(),
    )

    assert status == 200
    assert "server" not in headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-upstream"] == "yes"


async def test_real_server_refuses_oversized_headers_with_431(
    served_gateway: int, upstream: TestUpstream
) -> None:
    status, _, _ = await raw_http(
        served_gateway,
        b"GET /api/v1/products HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
        + b"X-Big: "
        + b"x" * 20_000
        + b"\r\n\r\n",
    )

    assert status == 431
    assert upstream.received == []


async def test_chunked_body_over_the_limit_is_cut_off_with_413(
    make_gateway: GatewayFactory, upstream: TestUpstream
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "'
        for _ in range(20):
            yield b"a" * 1024

    async with make_gateway(max_body_bytes=8192) as gw:
        response = await gw.client.post(
            "/api/v1/auth/login",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )

    assert response.status_code == 413
    assert upstream.received == []
