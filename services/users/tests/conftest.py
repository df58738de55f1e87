"""Fixtures for the users service: a migrated database per xdist worker, its own
Redis database, a real mail sink process, a job queue and a dead-letters queue per
test module on the real RabbitMQ, the users worker run in the test's event loop,
and the ASGI app driven by httpx."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis

from emporium_testkit.isolation import (
    migrate_fresh,
    redis_url,
    truncate_all,
    worker_database_url,
)
from emporium_testkit.processes import ChildProcess, free_port
from users.main import create_app
from users.settings import UsersSettings
from users.worker import UsersWorker

# The test kit (SMTP stand-in, TCP proxy, in-process worker...) lives beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from users_testkit import AMQP_URL, SmtpStandIn, delete_queues, running_worker, unique_name

SERVICE_ROOT = Path(__file__).resolve().parents[1]
SEED_TABLES = ("roles", "permissions", "role_permissions")
ADMIN_EMAIL = "root@emporium.test"
ADMIN_PASSWORD = "root-password-1"
PASSWORD = "correct-horse-9"


@pytest.fixture(scope="session")
def database_url() -> str:
    url = worker_database_url("emporium_users")
    migrate_fresh(url, SERVICE_ROOT / "alembic.ini")
    return url


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[tuple[str, int]]:
    smtp_port, http_port = free_port(), free_port()
    sink = ChildProcess(
        "mailsink",
        env={"MAILSINK_SMTP_PORT": str(smtp_port), "MAILSINK_HTTP_PORT": str(http_port)},
    )
    base = f"http://127.0.0.1:{http_port}"
    sink.wait_until_ready(f"{base}/livez")
    yield base, smtp_port
    sink.stop()


@pytest.fixture(scope="session")
def base_settings(
    database_url: str, mail_sink: tuple[str, int], tmp_path_factory: pytest.TempPathFactory
) -> UsersSettings:
    _, smtp_port = mail_sink
    return UsersSettings(
        database_url=database_url,
        redis_url=redis_url(0),
        bcrypt_rounds=4,
        smtp_port=smtp_port,
        public_web_url="https://shop.example.test",
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        rate_limit_login_failures="5/15minute",
        jwt_private_key_file=tmp_path_factory.mktemp("keys") / "users.pem",
        # Modules that need the relay turn it on; jobs then go to their own queue.
        run_outbox_relay=False,
        # A failed job is tried again soon: outage tests take seconds, not minutes.
        jobs_retry_base_seconds=0.1,
        jobs_retry_max_seconds=1.0,
        worker_concurrency=20,
        log_json=True,
    )


@pytest.fixture(scope="module")
async def jobs_queue() -> AsyncIterator[str]:
    """A job queue of this module's own (the default one is shared with `make run` and
    other xdist workers, whose workers would take these jobs), deleted afterwards with
    its delay and rejected queues."""
    name = unique_name("users.jobs")
    yield name
    await delete_queues(AMQP_URL, name, f"{name}.delay", f"{name}.rejected")


@pytest.fixture(scope="module")
async def dead_letters_queue() -> AsyncIterator[str]:
    """A dead-letters queue of this module's own (the ops service consumes the default)."""
    name = unique_name("emporium.dead-letters")
    yield name
    await delete_queues(AMQP_URL, name)


@pytest.fixture(scope="module")
def settings(
    base_settings: UsersSettings, jobs_queue: str, dead_letters_queue: str
) -> UsersSettings:
    return base_settings.model_copy(
        update={"jobs_queue": jobs_queue, "dead_letters_queue": dead_letters_queue}
    )


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpStandIn]:
    """An SMTP server of this module's own that a test can stop, start and script."""
    server = SmtpStandIn()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mail_api(mail_sink: tuple[str, int]) -> str:
    return mail_sink[0]


@pytest.fixture
async def redis(settings: UsersSettings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def worker(settings: UsersSettings) -> AsyncIterator[UsersWorker]:
    """The users worker consuming this module's job queue in the test's event loop.

    A test (or a module's ``app``) asks for it before the app: its queues must exist
    before the app's relay publishes a job, or RabbitMQ drops the job as unroutable.
    """
    async with running_worker(settings) as running:
        yield running


@pytest.fixture
async def app(settings: UsersSettings, database_url: str, mail_api: str) -> AsyncIterator[FastAPI]:
    await truncate_all(database_url, keep=SEED_TABLES)
    flush = Redis.from_url(settings.redis_url)
    await flush.flushdb()
    await flush.aclose()
    async with httpx.AsyncClient() as mail:
        await mail.delete(f"{mail_api}/api/v1/messages")
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://users.test") as http:
        yield http


class Identity:
    """Drives the identity routes the way a client does."""

    password = PASSWORD

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def register(self, email: str, **extra: Any) -> dict[str, Any]:
        body = {"email": email, "password": PASSWORD, "full_name": "Test User", **extra}
        response = await self.http.post("/api/v1/auth/register", json=body)
        assert response.status_code == 201, response.text
        user: dict[str, Any] = response.json()
        return user

    async def login(self, email: str, password: str = PASSWORD, **headers: str) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
        )
        assert response.status_code == 200, response.text
        pair: dict[str, Any] = response.json()
        return pair

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.http.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    async def me(self, pair: dict[str, Any]) -> httpx.Response:
        return await self.http.get("/api/v1/users/me", headers=self.bearer(pair))

    @staticmethod
    def bearer(pair: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {pair['access_token']}"}

    async def admin(self) -> dict[str, Any]:
        return await self.login(ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def identity(client: httpx.AsyncClient) -> Identity:
    return Identity(client)


class MailSink:
    def __init__(self, base: str) -> None:
        self.base = base

    async def messages_to(self, address: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.base) as http:
            listing = (await http.get("/api/v1/messages")).json()["messages"]
            found = []
            for summary in listing:
                if any(to["Address"] == address for to in summary["To"]):
                    found.append((await http.get(f"/api/v1/message/{summary['ID']}")).json())
            return found

    async def wait_for(self, address: str, within_seconds: float = 10.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        while loop.time() < deadline:
            messages = await self.messages_to(address)
            if messages:
                return messages[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no email to {address} within {within_seconds}s")


@pytest.fixture
def mail(mail_api: str) -> MailSink:
    return MailSink(mail_api)
