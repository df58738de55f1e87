"""The kit's fast path: some prefixes served outside FastAPI, behind the same edges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from emporium_kit.app import FastPath, create_service_app
from emporium_kit.context import current_request_id
from emporium_kit.metrics import HTTP_REQUESTS
from emporium_kit.settings import ServiceSettings


async def fast_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A pure ASGI app that says it answered and what it saw."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = {"by": "fast", "request_id": current_request_id(), "bytes": len(body)}
    await JSONResponse(answer)(scope, receive, send)


def build() -> FastAPI:
    router = APIRouter()

    @router.get("/api/shadowed")
    async def shadowed() -> dict[str, str]:
        return {"by": "fastapi"}

    @router.get("/elsewhere")
    async def elsewhere() -> dict[str, str]:
        return {"by": "fastapi"}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    return create_service_app(
        service="kit-fast-path",
        title="fast path",
        version="0",
        description="",
        settings=ServiceSettings(max_body_bytes=64),
        lifespan=lifespan,
        routers=[router],
        health_checks={},
        fast_path=FastPath(prefixes=("/api/",), app=fast_app),
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build())
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as http:
        yield http


async def test_prefixed_requests_skip_fastapi_and_the_rest_reach_it(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/shadowed")).json()["by"] == "fast"
    assert (await client.get("/api/anything/else")).json()["by"] == "fast"
    assert (await client.get("/elsewhere")).json()["by"] == "fastapi"
    assert (await client.get("/health/live")).status_code == 200


async def test_the_fast_path_keeps_every_kit_edge(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/x", headers={"X-Request-ID": "fast-1"})
    assert response.headers["x-request-id"] == "fast-1"
    assert response.json()["request_id"] == "fast-1"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "server" not in response.headers

    too_large = await client.post("/api/x", content=b"{" + b" " * 100 + b"}",
                                  headers={"content-type": "application/json"})  # fmt: skip
    assert too_large.status_code == 413
    assert too_large.headers["content-type"] == "application/problem+json"
    not_json = await client.post("/api/x", content=b"hello", headers={"content-type": "text/plain"})
    assert not_json.status_code == 415
    assert not_json.headers["x-request-id"]

    before = HTTP_REQUESTS.labels("kit-fast-path", "GET", "unmatched", "200")._value.get()
    await client.get("/api/counted")
    after = HTTP_REQUESTS.labels("kit-fast-path", "GET", "unmatched", "200")._value.get()
    assert after == before + 1
