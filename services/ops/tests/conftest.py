"""Fixtures for the ops service: a migrated database per xdist worker, a dead-letters
queue of this run's own on the real RabbitMQ, a JWKS stand-in for the users service,
and the ASGI app driven by httpx."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from emporium_kit.messaging.dead_letters import (
    DeadLetter,
    declare_dead_letters,
    publish_dead_letter,
)
from emporium_testkit.isolation import migrate_fresh, truncate_all, worker_database_url, worker_id
from ops.main import create_app
from ops.settings import OpsSettings

# The test kit (JWKS stand-in, keys, tokens, dead letters) lives beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from ops_testkit import JwksStandIn, SigningKey

SERVICE_ROOT = Path(__file__).resolve().parents[1]
AMQP_URL = OpsSettings().amqp_url


def unique_name(what: str) -> str:
    return f"ops.test-{worker_id()}-{what}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def database_url() -> str:
    url = worker_database_url("emporium_ops")
    migrate_fresh(url, SERVICE_ROOT / "alembic.ini")
    return url


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="session")
def jwks(signing_key: SigningKey) -> Iterator[JwksStandIn]:
    stand_in = JwksStandIn([signing_key])
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="session")
async def amqp() -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(AMQP_URL, timeout=10)
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
async def channel(amqp: AbstractRobustConnection) -> AsyncIterator[AbstractChannel]:
    """A channel with publisher confirms, as every dead-letter publisher has."""
    opened = await amqp.channel(publisher_confirms=True)
    yield opened
    with contextlib.suppress(Exception):
        await opened.close()


@pytest.fixture(scope="session")
async def queue_names(channel: AbstractChannel) -> AsyncIterator[Callable[[str], str]]:
    """Unique queue names, each deleted at the end of the session."""
    names: list[str] = []

    def new_name(what: str) -> str:
        names.append(unique_name(what))
        return names[-1]

    yield new_name
    for name in names:
        with contextlib.suppress(Exception):
            await channel.queue_delete(name)


@pytest.fixture(scope="session")
def dead_letters_queue(queue_names: Callable[[str], str]) -> str:
    """This session's own DEAD_LETTERS_QUEUE: `make run` and other workers never see it."""
    return queue_names("dead-letters")


@pytest.fixture(scope="session")
def settings(database_url: str, jwks: JwksStandIn, dead_letters_queue: str) -> OpsSettings:
    return OpsSettings(
        database_url=database_url,
        users_url=jwks.url,
        jwks_min_refresh_seconds=0,
        dead_letters_queue=dead_letters_queue,
        # One at a time, so a test knows that what it published before is stored.
        consumer_prefetch=1,
        broker_timeout_seconds=3,
        log_json=True,
    )


@pytest.fixture
async def app(settings: OpsSettings, database_url: str) -> AsyncIterator[FastAPI]:
    await truncate_all(database_url)
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ops.test") as http:
        yield http


@pytest.fixture
def admin(signing_key: SigningKey) -> dict[str, str]:
    return signing_key.admin_headers()


@pytest.fixture
def customer(signing_key: SigningKey) -> dict[str, str]:
    return signing_key.customer_headers()


@pytest.fixture(scope="session")
async def dead_letters_exchange(
    channel: AbstractChannel, dead_letters_queue: str
) -> AbstractExchange:
    exchange, _ = await declare_dead_letters(channel, dead_letters_queue)
    return exchange


Publish = Callable[[DeadLetter], Awaitable[None]]


@pytest.fixture
def publish(dead_letters_exchange: AbstractExchange, dead_letters_queue: str) -> Publish:
    """Publish a dead letter the way every service does (``publish_dead_letter``)."""

    async def send(letter: DeadLetter) -> None:
        await publish_dead_letter(dead_letters_exchange, letter, dead_letters_queue)

    return send


class Api:
    """Drives the dead-letter routes the way an admin client does."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.http = http
        self.headers = headers

    async def page(self, **params: Any) -> httpx.Response:
        return await self.http.get(
            "/api/v1/admin/dead-letters", params=params, headers=self.headers
        )

    async def items(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.page(limit=100, **params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def replay(self, letter_id: object) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/admin/dead-letters/{letter_id}/replay", headers=self.headers
        )

    async def wait_for(
        self, letter_id: object, *, within: float = 10.0, **params: Any
    ) -> dict[str, Any]:
        """The listed item of ``letter_id``, once the consumer has stored it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for item in await self.items(**params):
                if item["id"] == str(letter_id):
                    return item
            if loop.time() > deadline:
                pytest.fail(f"dead letter {letter_id} was not stored within {within}s")
            await asyncio.sleep(0.05)


@pytest.fixture
def api(client: httpx.AsyncClient, admin: dict[str, str]) -> Api:
    return Api(client, admin)
