"""Schemathesis against the running ops service: no input yields a server error, and no
request that the OpenAPI document allows is refused as malformed.

The service runs as a real process (uvicorn, as in production) on this worker's
database, verifying tokens against the JWKS stand-in; generated requests carry an
ops:admin token so the routes are explored past authorisation, and a second run
goes without one. A few dead letters are stored first, one of them on a queue
that exists, so listing pages and replays meet real rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aio_pika
import httpx
import pytest
import schemathesis
import schemathesis.specs.openapi.adapter
from hypothesis import HealthCheck, settings
from ops_testkit import JwksStandIn, SigningKey, dead_letter
from schemathesis.checks import not_a_server_error

from emporium_kit.messaging.dead_letters import declare_dead_letters, publish_dead_letter
from emporium_kit.pagination import InvalidCursor
from emporium_kit.problems import problem_type
from emporium_testkit.fuzzing import accepts_positive_data
from emporium_testkit.isolation import truncate_all
from emporium_testkit.processes import ChildProcess, free_port
from ops.settings import OpsSettings


async def _store_some(settings: OpsSettings, base: str, headers: dict[str, str]) -> None:
    await truncate_all(settings.database_url)
    connection = await aio_pika.connect(settings.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange, _ = await declare_dead_letters(channel, settings.dead_letters_queue)
        letters = [dead_letter(queue=f"fuzz.queue-{n % 2}") for n in range(5)]
        for letter in letters:
            await publish_dead_letter(exchange, letter, settings.dead_letters_queue)
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        for _ in range(200):
            listed = (await http.get("/api/v1/admin/dead-letters")).json()
            if len(listed["items"]) == len(letters):
                return
            await asyncio.sleep(0.05)
    pytest.fail("the fuzzed ops process did not store its dead letters")


@pytest.fixture(scope="module")
def ops_process(settings: OpsSettings, jwks: JwksStandIn) -> Iterator[str]:
    port = free_port()
    env = {
        "OPS_PORT": str(port),
        "OPS_DATABASE_URL": settings.database_url,
        "OPS_USERS_URL": jwks.url,
        "OPS_JWKS_MIN_REFRESH_SECONDS": "0",
        "DEAD_LETTERS_QUEUE": settings.dead_letters_queue,
        "LOG_LEVEL": "WARNING",
    }
    process = ChildProcess("ops", env=env)
    base = f"http://127.0.0.1:{port}"
    process.wait_until_ready(f"{base}/health/live")
    yield base
    process.stop()


@pytest.fixture(scope="module")
def admin_headers(signing_key: SigningKey) -> dict[str, str]:
    return signing_key.admin_headers()


@pytest.fixture(scope="module")
def ops_schema(ops_process: str, settings: OpsSettings, admin_headers: dict[str, str]) -> Any:
    asyncio.run(_store_some(settings, ops_process, admin_headers))
    return schemathesis.openapi.from_url(f"{ops_process}/openapi.json")


schema = schemathesis.pytest.from_fixture("ops_schema")

CHECKS = [
    not_a_server_error,
    # A generated cursor has the published shape but was never issued.
    accepts_positive_data(unissued_value_problems={problem_type(InvalidCursor.code)}),
]

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@schema.parametrize()
@FUZZ
def test_no_request_fails_the_service_and_none_it_allows_is_refused_as_admin(
    case: Any, admin_headers: dict[str, str]
) -> None:
    case.call_and_validate(headers=admin_headers, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_no_request_fails_the_service_and_none_it_allows_is_refused_anonymously(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
