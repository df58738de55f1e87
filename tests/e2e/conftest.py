"""The whole running system, driven through the gateway as a client would.

Real processes (the mail sink, users and its worker, ops, the catalogue, the
gateway) on free ports, against fresh databases of this worker's, a Redis database
and job and dead-letter queues of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from redis import Redis

from emporium_testkit.isolation import migrate_fresh, redis_url, worker_database_url
from emporium_testkit.otlp import OtlpCollector
from emporium_testkit.processes import ChildProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "admin@e2e.example.com"
ADMIN_PASSWORD = "e2e-admin-pass-1"
PASSWORD = "e2e-pass-1234"
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass(frozen=True)
class System:
    gateway: str
    users: str
    catalog: str
    mail: str
    redis_url: str
    traces: OtlpCollector
    jobs_queue: str
    dead_letters_queue: str
    catalog_orders_queue: str


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(tmp_path_factory, database="emporium_users_e2e", redis_offset=3) as up:
        yield up


@contextlib.contextmanager
def running_system(
    tmp_path_factory: pytest.TempPathFactory, *, database: str, redis_offset: int
) -> Iterator[System]:
    """Mail sink, users, ops, catalog and gateway as real processes, on databases and a Redis
    db of their own."""
    database_url = worker_database_url(database)
    migrate_fresh(database_url, ROOT / "services" / "users" / "alembic.ini")
    ops_database_url = worker_database_url(database.replace("users", "ops"))
    migrate_fresh(ops_database_url, ROOT / "services" / "ops" / "alembic.ini")
    catalog_database_url = worker_database_url(database.replace("users", "catalog"))
    migrate_fresh(catalog_database_url, ROOT / "services" / "catalog" / "alembic.ini")
    smtp, mail_http, users_port, gateway_port, worker_metrics, ops_port, catalog_port = (
        free_port() for _ in range(7)
    )
    catalog_consumers_metrics = free_port()
    redis = redis_url(redis_offset)
    flush = Redis.from_url(redis)
    flush.flushdb()  # counters and revocations of an earlier run
    flush.close()
    # Every process exports its spans over OTLP to a collector of this run's own.
    traces = OtlpCollector().start()
    shared = {"REDIS_URL": redis, "LOG_LEVEL": "WARNING", **traces.env()}
    # Queues of this run's own: on the shared default ones, another system's
    # worker would take (and fail) this system's jobs.
    run = uuid.uuid4().hex[:12]
    jobs_queue, dead_letters = f"users.jobs.e2e-{run}", f"emporium.dead-letters.e2e-{run}"
    catalog_orders = f"catalog.orders.e2e-{run}"
    shared["DEAD_LETTERS_QUEUE"] = dead_letters
    processes: list[ChildProcess] = []
    try:
        mailsink = ChildProcess(
            "mailsink",
            env={"MAILSINK_SMTP_PORT": str(smtp), "MAILSINK_HTTP_PORT": str(mail_http)},
        )
        processes.append(mailsink)
        mailsink.wait_until_ready(f"http://127.0.0.1:{mail_http}/livez")
        users_env = {
            **shared,
            "USERS_DATABASE_URL": database_url,
            "USERS_BCRYPT_ROUNDS": "4",
            "USERS_JWT_PRIVATE_KEY_FILE": str(tmp_path_factory.mktemp("keys") / "k.pem"),
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SMTP_PORT": str(smtp),
            "PUBLIC_WEB_URL": "https://shop.e2e.test",
            "USERS_JOBS_QUEUE": jobs_queue,
        }
        users = ChildProcess("users", env={**users_env, "USERS_PORT": str(users_port)})
        processes.append(users)
        users.wait_until_ready(f"http://127.0.0.1:{users_port}/health/ready")
        worker = ChildProcess(
            "users.worker",
            env={**users_env, "USERS_WORKER_METRICS_PORT": str(worker_metrics)},
        )
        processes.append(worker)
        worker.wait_until_ready(f"http://127.0.0.1:{worker_metrics}/metrics")
        ops = ChildProcess(
            "ops",
            env={
                **shared,
                "OPS_PORT": str(ops_port),
                "OPS_DATABASE_URL": ops_database_url,
                "OPS_USERS_URL": f"http://127.0.0.1:{users_port}",
            },
        )
        processes.append(ops)
        ops.wait_until_ready(f"http://127.0.0.1:{ops_port}/health/ready")
        catalog = ChildProcess(
            "catalog",
            env={
                **shared,
                "CATALOG_PORT": str(catalog_port),
                "CATALOG_DATABASE_URL": catalog_database_url,
                "CATALOG_USERS_URL": f"http://127.0.0.1:{users_port}",
                # No rates stand-in in this system: ?currency= reads answer fx_error.
                "CATALOG_FX_FETCH_WHEN_EMPTY": "false",
            },
        )
        processes.append(catalog)
        catalog.wait_until_ready(f"http://127.0.0.1:{catalog_port}/health/ready")
        # The order events that reserve, commit and release stock (its /metrics
        # answers once it consumes).
        catalog_consumers = ChildProcess(
            "catalog.consumers",
            env={
                **shared,
                "CATALOG_DATABASE_URL": catalog_database_url,
                "CATALOG_ORDERS_QUEUE": catalog_orders,
                "CATALOG_CONSUMERS_METRICS_PORT": str(catalog_consumers_metrics),
            },
        )
        processes.append(catalog_consumers)
        catalog_consumers.wait_until_ready(f"http://127.0.0.1:{catalog_consumers_metrics}/metrics")
        gateway = ChildProcess(
            "gateway",
            env={
                **shared,
                "GATEWAY_PORT": str(gateway_port),
                "GATEWAY_USERS_URL": f"http://127.0.0.1:{users_port}",
                "GATEWAY_CATALOG_URL": f"http://127.0.0.1:{catalog_port}",
                "GATEWAY_ORDERS_URL": f"http://127.0.0.1:{free_port()}",
                "GATEWAY_OPS_URL": f"http://127.0.0.1:{ops_port}",
                "GATEWAY_REQUIRED_UPSTREAMS": "users,ops,catalog",
                "GATEWAY_REDIS_KEY_PREFIX": f"e2e:gw:{uuid.uuid4().hex}:",
                # Generous limits so fuzzing explores past the limiter; the
                # limits themselves are tested in the gateway's own suite.
                "RATE_LIMIT_ANONYMOUS": "100000/minute",
                "RATE_LIMIT_USER": "100000/minute",
                "RATE_LIMIT_AUTH": "100000/minute",
            },
        )
        processes.append(gateway)
        gateway.wait_until_ready(f"http://127.0.0.1:{gateway_port}/health/ready")
        yield System(
            gateway=f"http://127.0.0.1:{gateway_port}",
            users=f"http://127.0.0.1:{users_port}",
            catalog=f"http://127.0.0.1:{catalog_port}",
            mail=f"http://127.0.0.1:{mail_http}",
            redis_url=redis,
            traces=traces,
            jobs_queue=jobs_queue,
            dead_letters_queue=dead_letters,
            catalog_orders_queue=catalog_orders,
        )
    finally:
        for process in reversed(processes):
            process.stop()
        traces.stop()
        # On a thread of its own: this thread's event loop belongs to pytest-asyncio.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(
                asyncio.run,
                _delete_queues(
                    jobs_queue,
                    f"{jobs_queue}.delay",
                    f"{jobs_queue}.rejected",
                    dead_letters,
                    catalog_orders,
                    f"{catalog_orders}.retry",
                    f"{catalog_orders}.dlq",
                ),
            ).result()


async def _delete_queues(*names: str) -> None:
    connection = await aio_pika.connect(AMQP_URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        for name in names:
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)


def extra_gateway(system: System, **env: str) -> Iterator[str]:
    """Another gateway in front of the system's users service, with settings of its own."""
    port = free_port()
    process = ChildProcess(
        "gateway",
        env={
            "GATEWAY_PORT": str(port),
            "GATEWAY_USERS_URL": system.users,
            "GATEWAY_CATALOG_URL": f"http://127.0.0.1:{free_port()}",
            "GATEWAY_ORDERS_URL": f"http://127.0.0.1:{free_port()}",
            "REDIS_URL": system.redis_url,
            "LOG_LEVEL": "WARNING",
            **env,
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        process.wait_until_ready(f"{base}/health/live")
        yield base
    finally:
        process.stop()


@pytest.fixture
async def api(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.gateway, timeout=10) as client:
        yield client


class Shopper:
    """A client of the public API: registers, logs in, calls with its token."""

    def __init__(self, api: httpx.AsyncClient, email: str) -> None:
        self.api = api
        self.email = email
        self.pair: dict[str, Any] = {}

    async def register(self) -> dict[str, Any]:
        response = await self.api.post(
            "/api/v1/auth/register",
            json={"email": self.email, "password": PASSWORD, "full_name": "E2E Shopper"},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def login(self, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.api.post(
            "/api/v1/auth/login", json={"email": self.email, "password": password}
        )
        assert response.status_code == 200, response.text
        self.pair = response.json()
        return self.pair

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.pair['access_token']}"}

    async def me(self) -> httpx.Response:
        return await self.api.get("/api/v1/users/me", headers=self.auth)


async def eventually_status(
    call: Any, expected: int, *, within_seconds: float = 1.0
) -> httpx.Response:
    """Poll until the response has ``expected`` status (the contract's 'within a second')."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while True:
        response: httpx.Response = await call()
        if response.status_code == expected or loop.time() > deadline:
            return response
        await asyncio.sleep(0.05)


@pytest.fixture
def shopper(api: httpx.AsyncClient) -> Any:
    counter = iter(range(1_000_000))

    async def make(prefix: str = "shopper", *, login: bool = True) -> Shopper:
        person = Shopper(api, f"{prefix}-{uuid.uuid4().hex[:10]}-{next(counter)}@example.com")
        await person.register()
        if login:
            await person.login()
        return person

    return make


@pytest.fixture
def eventually() -> Any:
    return eventually_status


@pytest.fixture
async def admin(api: httpx.AsyncClient) -> Shopper:
    person = Shopper(api, ADMIN_EMAIL)
    await person.login(ADMIN_PASSWORD)
    return person


@pytest.fixture(scope="session")
def admin_bearer(system: System) -> dict[str, str]:
    response = httpx.post(
        f"{system.gateway}/api/v1/auth/login",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
