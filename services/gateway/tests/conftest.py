"""Fixtures: one real test upstream per session; a gateway per test, on real Redis/RabbitMQ.

Every gateway gets its own Redis key prefix, so tests never see each other's
rate-limit counts or cache entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from emporium_testkit.tracing import span_recorder
from gateway.composition import GATEWAY
from gateway.main import create_app

# The test kit (upstream server, keys, tokens) lives beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from gateway_testkit import (
    CLIENT_IP,
    REDIS_URL,
    Gateway,
    GatewayFactory,
    SigningKey,
    TestUpstream,
    Tokens,
    free_port,
    gateway_settings,
    upstream_app,
)

from emporium_testkit.processes import serve_in_process


@pytest.fixture(scope="session")
async def upstream() -> AsyncIterator[TestUpstream]:
    state = TestUpstream(port=free_port(), keys=[SigningKey.generate()])
    async with serve_in_process(upstream_app(state), state.port, lifespan="off"):
        yield state


@pytest.fixture(scope="session", autouse=True)
def _tracing() -> None:
    """The SDK's tracer provider, as every process has it (recording in memory)."""
    span_recorder()


@pytest.fixture(autouse=True)
def _fresh_upstream(request: pytest.FixtureRequest) -> None:
    if "upstream" in request.fixturenames:
        request.getfixturevalue("upstream").reset()


@pytest.fixture(scope="session")
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def make_gateway(upstream: TestUpstream) -> GatewayFactory:
    @contextlib.asynccontextmanager
    async def factory(*, client_ip: str = CLIENT_IP, **overrides: Any) -> AsyncIterator[Gateway]:
        settings = gateway_settings(upstream, **overrides)
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=10) as manager:
            # The listener bumps the cache generation once connected; wait for it
            # so that it cannot turn a test's HIT into a MISS.
            await asyncio.wait_for(GATEWAY.get(app).listener.ready.wait(), 5)
            transport = httpx.ASGITransport(app=manager.app, client=(client_ip, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                yield Gateway(app=app, client=client, settings=settings)

    return factory


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    async with make_gateway() as gw:
        yield gw


@pytest.fixture
def tokens(upstream: TestUpstream) -> Tokens:
    return Tokens(upstream.keys[0])
