"""The kit's HTTP pieces, assembled by create_service_app, against real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from emporium_kit.app import create_service_app
from emporium_kit.context import current_request_id
from emporium_kit.database import (
    DATABASE_ERROR_HANDLERS,
    DATABASE_UNAVAILABLE_ERRORS,
    postgres_check,
)
from emporium_kit.fields import Line
from emporium_kit.health import redis_check
from emporium_kit.messaging import rabbitmq_check
from emporium_kit.settings import ServiceSettings


class RuleBroken(Exception):
    code = "rule-broken"


class Widget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Line
    size: int


def build(*, redis_port: int = 6379, amqp_port: int = 5672, postgres_port: int = 5432) -> FastAPI:
    engine = create_async_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{postgres_port}/postgres",
        connect_args={"timeout": 1},
    )
    redis = Redis(host="127.0.0.1", port=redis_port, socket_connect_timeout=0.5)
    router = APIRouter()

    @router.post("/widgets/{widget_id}", status_code=201)
    async def create(widget_id: int, body: Widget) -> dict[str, object]:
        return {"id": widget_id, "name": body.name, "request_id": current_request_id()}

    @router.get("/widgets")
    async def listing(limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, int]:
        return {"limit": limit}

    @router.api_route("/body-size", methods=["GET", "DELETE"])
    async def body_size(request: Request) -> dict[str, int]:
        # Reads whatever body comes, as the gateway does when it forwards one.
        return {"bytes": len(await request.body())}

    @router.get("/rows")
    async def rows() -> dict[str, int]:
        async with engine.connect() as conn:
            return {"one": (await conn.execute(text("SELECT 1"))).scalar_one()}

    @router.get("/driver/{case}")
    async def on_the_driver(case: str) -> None:
        # SQL text on asyncpg itself, as a service's hot reads run it.
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            if case == "timeout":
                await driver.execute("SET statement_timeout = 10")
                await driver.fetch("SELECT pg_sleep(2)")
            elif case == "terminated":
                await driver.fetch("SELECT pg_terminate_backend(pg_backend_pid())")
            else:
                await driver.fetch("SELEC 1")

    @router.get("/broken-rule")
    async def broken() -> None:
        raise RuleBroken("widgets must be round")

    @router.get("/bug")
    async def bug() -> None:
        raise RuntimeError("secret internals")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await redis.aclose()
        await engine.dispose()

    return create_service_app(
        service="kit-test",
        title="kit test",
        version="0",
        description="",
        settings=ServiceSettings(max_body_bytes=1024, health_check_timeout_seconds=1.0),
        lifespan=lifespan,
        routers=[router],
        health_checks={
            "postgres": postgres_check(engine),
            "redis": redis_check(redis),
            "rabbitmq": rabbitmq_check(f"amqp://guest:guest@127.0.0.1:{amqp_port}/", 1.0),
        },
        domain_errors={RuleBroken: 409},
        unavailable_errors=DATABASE_UNAVAILABLE_ERRORS,
        exception_handlers=DATABASE_ERROR_HANDLERS,
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as http:
        yield http


async def test_request_id_is_echoed_generated_and_visible_to_handlers(
    client: httpx.AsyncClient,
) -> None:
    given = await client.post(
        "/widgets/1", json={"name": "a", "size": 1}, headers={"X-Request-ID": "req-1.A_b"}
    )
    assert given.headers["x-request-id"] == "req-1.A_b"
    assert given.json()["request_id"] == "req-1.A_b"
    generated = await client.get("/widgets", headers={"X-Request-ID": "bad id!"})
    assert generated.headers["x-request-id"] != "bad id!"
    assert len(generated.headers["x-request-id"]) == 32


async def test_security_headers_on_success_and_error_without_server_banner(
    client: httpx.AsyncClient,
) -> None:
    for response in (await client.get("/widgets"), await client.get("/nowhere")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "max-age=" in response.headers["strict-transport-security"]
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "server" not in response.headers
    docs = await client.get("/docs")
    assert "script-src 'self'" in docs.headers["content-security-policy"]


async def test_validation_errors_are_422_problems_with_locations(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/widgets/1", json={"name": "a", "size": "big", "extra": 1})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "Validation failed"
    locs = sorted(tuple(e["loc"]) for e in body["errors"])
    assert locs == [("body", "extra"), ("body", "size")]
    assert body["request_id"] == response.headers["x-request-id"]
    bad_query = await client.get("/widgets", params={"limit": 1000})
    assert bad_query.status_code == 422
    bad_path = await client.post("/widgets/abc", json={"name": "a", "size": 1})
    assert bad_path.status_code == 422


async def test_malformed_json_is_400_and_nul_bytes_are_422(client: httpx.AsyncClient) -> None:
    malformed = await client.post(
        "/widgets/1", content=b'{"name": "a",', headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["type"].endswith("/malformed-json")
    nul = await client.post("/widgets/1", json={"name": "a\x00b", "size": 1})
    assert nul.status_code == 422


async def test_body_limits_and_content_type(client: httpx.AsyncClient) -> None:
    too_big = await client.post("/widgets/1", json={"name": "x" * 2000, "size": 1})
    assert too_big.status_code == 413
    assert too_big.headers["content-type"] == "application/problem+json"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 512

    streamed = await client.post(
        "/widgets/1", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    wrong_type = await client.post(
        "/widgets/1",
        content=b"name=a",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert wrong_type.status_code == 415
    vendor_json = await client.post(
        "/widgets/1",
        content=b'{"name": "a", "size": 1}',
        headers={"Content-Type": "application/vnd.api+json"},
    )
    assert vendor_json.status_code == 201


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_every_method_refuses_an_oversized_declared_body_before_reading_it(
    client: httpx.AsyncClient, method: str
) -> None:
    pulled = 0

    async def sixteen_mebibytes() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(256):
            pulled += 1
            yield b" " * 65536

    response = await client.request(
        method,
        "/body-size",
        content=sixteen_mebibytes(),
        headers={"Content-Type": "application/json", "Content-Length": str(16 * 1024 * 1024)},
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/body-too-large")
    assert pulled <= 1


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_every_method_cuts_off_a_chunked_body_once_it_passes_the_limit(
    client: httpx.AsyncClient, method: str
) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(256):
            pulled += 1
            yield b" " * 512

    response = await client.request(
        method, "/body-size", content=endless(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    # The limit is 1024 bytes: the third chunk passes it and nothing more is read.
    assert pulled <= 4


async def test_a_small_body_on_a_get_is_still_read(client: httpx.AsyncClient) -> None:
    response = await client.request(
        "GET", "/body-size", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {"bytes": 2}


async def test_domain_errors_map_to_their_status_and_code(client: httpx.AsyncClient) -> None:
    response = await client.get("/broken-rule")
    assert response.status_code == 409
    assert response.json()["type"] == "https://emporium.dev/problems/rule-broken"
    assert response.json()["detail"] == "widgets must be round"


async def test_unexpected_errors_are_500_problems_without_internals(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/bug", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "bug-1"
    assert response.json()["request_id"] == "bug-1"
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text


async def test_unknown_route_is_404_and_wrong_method_405_with_allow(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await client.delete("/widgets")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD"  # HEAD is answered as GET


async def test_head_is_answered_as_get_without_content(client: httpx.AsyncClient) -> None:
    got = await client.get("/widgets?limit=7")
    head = await client.head("/widgets?limit=7")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"] != "0"
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["x-request-id"]
    refused = await client.head("/widgets?limit=0")  # the GET's validation, the GET's 422
    assert refused.status_code == 422
    assert refused.content == b""
    assert (await client.head("/widgets/7")).status_code == 405  # a POST-only route
    text = (await client.get("/metrics")).text
    assert (
        'http_requests_total{method="HEAD",route="/widgets",service="kit-test",status="200"}'
        in (text)
    )


async def test_ready_is_200_when_every_dependency_answers(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    assert live.json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "rabbitmq": "ok"}


async def test_ready_is_503_naming_the_dependency_that_is_down() -> None:
    app = build(redis_port=1, amqp_port=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as http:
        response = await http.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["postgres"] == "ok"
    # redis-py retries a refused connection, so it may hit the check's timeout first.
    assert body["checks"]["redis"] in {"down", "timeout"}
    assert body["checks"]["rabbitmq"] == "down"
    assert body["detail"] == "Not ready: rabbitmq, redis unavailable."


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.post("/widgets/7", json={"name": "a", "size": 1})
    await client.post("/widgets/8", json={"name": "b", "size": 2})
    text = (await client.get("/metrics")).text
    assert (
        'http_requests_total{method="POST",route="/widgets/{widget_id}",'
        'service="kit-test",status="201"}'
    ) in text
    assert "/widgets/7" not in text
    assert "http_request_duration_seconds_bucket" in text


async def test_a_database_that_is_down_gives_503_not_500() -> None:
    transport = httpx.ASGITransport(app=build(postgres_port=1), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as http:
        response = await http.get("/rows")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"].endswith("/dependency-unavailable")


@pytest.mark.parametrize("case", ["timeout", "terminated"])
async def test_a_driver_error_that_means_unavailable_gives_503(
    client: httpx.AsyncClient, case: str
) -> None:
    """statement_timeout and a lost connection, raised by asyncpg itself: 503, not 500."""
    response = await client.get(f"/driver/{case}")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/dependency-unavailable")


async def test_a_driver_error_of_the_code_is_a_500_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/driver/syntax")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "SELEC" not in response.text


async def test_the_database_answers_when_up(client: httpx.AsyncClient) -> None:
    assert (await client.get("/rows")).json() == {"one": 1}
