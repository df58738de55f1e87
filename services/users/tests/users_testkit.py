"""The users tests' kit: polling with a deadline, an SMTP server a test can stop, start
and tell how to answer, a TCP proxy that plays a RabbitMQ outage, the users worker run
in the test's event loop, and the environment of a worker or scheduler process.

Imported by name (``from users_testkit import ...``): ``conftest.py`` puts this
directory on ``sys.path``, as the ops tests do with ``ops_testkit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import re
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aio_pika
import orjson
import psutil
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import create_async_engine
from taskiq.receiver import Receiver

from emporium_testkit.isolation import worker_id
from emporium_testkit.processes import ChildProcess, free_port
from emporium_testkit.proxy import TcpProxy as BaseTcpProxy
from users.settings import UsersSettings
from users.use_cases.jobs import SEND_PASSWORD_RESET_EMAIL
from users.worker import UsersWorker, build_worker

SEND_RESET_EMAIL = SEND_PASSWORD_RESET_EMAIL.task_name
AMQP_URL = UsersSettings().amqp_url


def unique_name(prefix: str) -> str:
    """A queue name of this test module's own: ``<prefix>.test-<xdist worker>-<hex>``."""
    return f"{prefix}.test-{worker_id()}-{uuid.uuid4().hex[:8]}"


async def delete_queues(amqp_url: str, *names: str) -> None:
    """Delete ``names`` (absent ones are fine); never fails the test that used them."""
    with contextlib.suppress(Exception):
        connection = await aio_pika.connect(amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel()
            for name in names:
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)


async def wait_until(
    condition: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``within``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        outcome = condition()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return outcome
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {within}s (last: {outcome!r})")
        await asyncio.sleep(interval)


async def query(settings: UsersSettings, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())
    finally:
        await engine.dispose()


async def reset_jobs_run(settings: UsersSettings) -> int:
    """How many reset-email jobs of this database's outbox have committed their run
    (their job id is in the inbox, recorded with the effect by ``first_run``)."""
    [(done,)] = await query(
        settings,
        "SELECT count(*) FROM inbox JOIN outbox ON outbox.id = inbox.message_id "
        "WHERE inbox.consumer = :job",
        job=SEND_RESET_EMAIL,
    )
    return int(done)


async def reset_tokens_of(settings: UsersSettings, address: str) -> int:
    [(tokens,)] = await query(
        settings,
        "SELECT count(*) FROM password_reset_tokens t JOIN users u ON u.id = t.user_id "
        "WHERE u.email = :email",
        email=address,
    )
    return int(tokens)


# --- the users worker in the test's event loop ----------------------------------------


@contextlib.asynccontextmanager
async def running_worker(settings: UsersSettings) -> AsyncIterator[UsersWorker]:
    """The users worker of ``settings`` (its jobs, middlewares, queues), consuming in this
    event loop through taskiq's own receiver, as ``python -m users.worker`` does in its
    process. Its queues are declared before this yields, so jobs the app's relay
    publishes from then on are routed to it."""
    worker = build_worker(settings)
    broker = worker.broker
    broker.is_worker_process = True
    await broker.startup()
    finish = asyncio.Event()
    receiver = Receiver(broker, max_async_tasks=settings.worker_concurrency, run_startup=False)
    listening = asyncio.create_task(receiver.listen(finish), name="users-worker")
    try:
        yield worker
    finally:
        finish.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(listening, 15)
        await broker.shutdown()
        for source in worker.scheduler.sources:
            await source.shutdown()


# --- the environment of python -m users.worker / users.scheduler ----------------------


def process_env(settings: UsersSettings, **overrides: str) -> dict[str, str]:
    """The environment a users process (app, worker, scheduler) needs to be part of the
    test's system: its database, Redis database, job and dead-letter queues, SMTP."""
    env = {
        "USERS_DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "AMQP_URL": settings.amqp_url,
        "USERS_JWT_PRIVATE_KEY_FILE": str(settings.jwt_private_key_file),
        "USERS_BCRYPT_ROUNDS": str(settings.bcrypt_rounds),
        "ADMIN_EMAIL": settings.admin_email,
        "ADMIN_PASSWORD": settings.admin_password.get_secret_value(),
        "SMTP_PORT": str(settings.smtp_port),
        "PUBLIC_WEB_URL": settings.public_web_url,
        "USERS_JOBS_QUEUE": settings.jobs_queue,
        "DEAD_LETTERS_QUEUE": settings.dead_letters_queue,
        "USERS_JOBS_RETRY_BASE_SECONDS": str(settings.jobs_retry_base_seconds),
        "USERS_JOBS_RETRY_MAX_SECONDS": str(settings.jobs_retry_max_seconds),
        "USERS_CLEANUP_INTERVAL_SECONDS": str(settings.cleanup_interval_seconds),
        "USERS_WORKER_METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
    }
    return {**env, **overrides}


async def consumers_of(amqp_url: str, queue: str) -> int:
    """How many consumers ``queue`` has now (0 if it does not exist yet)."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return 0
        return int(declared.declaration_result.consumer_count or 0)


def has_exited(process: ChildProcess) -> bool:
    try:
        process.wait(0)
    except subprocess.TimeoutExpired:
        return False
    return True


async def started_worker(settings: UsersSettings, **env: str) -> ChildProcess:
    """``python -m users.worker`` for ``settings``, once it consumes the job queue."""
    process = ChildProcess("users.worker", env=process_env(settings, **env))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not (
        "Listening started." in process.output()
        and await consumers_of(settings.amqp_url, settings.jobs_queue) > 0
    ):
        if loop.time() > deadline or has_exited(process):
            output = process.output()
            process.stop()
            raise AssertionError(f"users.worker did not start:\n{output[-4000:]}")
        await asyncio.sleep(0.1)
    return process


def worker_processes(manager_pid: int) -> list[psutil.Process]:
    """taskiq's worker manager ``manager_pid`` and the worker processes it forked."""
    manager = psutil.Process(manager_pid)
    return [manager, *manager.children(recursive=True)]


def children_running(module: str, *, jobs_queue: str | None = None) -> list[int]:
    """The pids of this test process's children started as ``python -m <module>`` (on
    ``jobs_queue``: other modules' systems in this process, the e2e one, run workers too)."""
    found = []
    for child in psutil.Process().children(recursive=False):
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            if "-m" not in cmdline or cmdline[cmdline.index("-m") + 1 :][:1] != [module]:
                continue
            if jobs_queue is None or child.environ().get("USERS_JOBS_QUEUE") == jobs_queue:
                found.append(child.pid)
    return found


def log_lines(output: str) -> Iterator[dict[str, Any]]:
    """The JSON log lines of a process's output (other lines skipped)."""
    for line in output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(line)
                if isinstance(parsed, dict):
                    yield parsed


def events_named(output: str, event: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(output) if line.get("event") == event]


def count_by(lines: list[dict[str, Any]], *keys: str) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(line.get(key) for key in keys) for line in lines)


# --- an SMTP server a test can stop, start, and tell how to answer --------------------

LINK = re.compile(r"https://[^\s\"<>]+/reset-password\?token=[A-Za-z0-9_-]+")


def reset_token_in(text: str) -> str:
    [link] = set(LINK.findall(text))
    [token] = parse_qs(urlsplit(link).query)["token"]
    return token


def _plain_text(content: bytes) -> str:
    message = email.message_from_bytes(content, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert isinstance(text, str)
    return text


@dataclass
class SmtpStandIn:
    """An SMTP server (aiosmtpd) on a port of its own that survives ``stop()``/``start()``.

    Per address, a test can make it refuse the recipient for good (``refuse_rcpt``: a
    5xx reply), refuse DATA with a transient reply (``fail_data``: that many times, or
    for ever with -1), or hold the first DATA (``hold_data``) until ``release()``: the
    client has sent the whole message and waits for the reply that says whether the
    server took it. ``accepted`` holds the text of every email answered 250;
    ``unacknowledged`` the ones held whose client was gone before the reply.
    """

    port: int = field(default_factory=free_port)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    fail_data: dict[str, int] = field(default_factory=dict)
    fail_reply: str = "451 4.3.0 try again later (test)"
    hold_data: set[str] = field(default_factory=set)
    accepted: dict[str, list[str]] = field(default_factory=dict)
    unacknowledged: dict[str, list[str]] = field(default_factory=dict)
    rcpt_attempts: Counter[str] = field(default_factory=Counter)
    data_attempts: Counter[str] = field(default_factory=Counter)
    holding: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    def start(self) -> None:
        assert self._controller is None
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until ``start()``. A held DATA is
        let go (its thread must not outlive the server); later holds hold again."""
        self.release()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def texts(self, address: str) -> list[str]:
        with self._lock:
            return list(self.accepted.get(address, []))

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        with self._lock:
            self.rcpt_attempts[address] += 1
            refusal = self.refuse_rcpt.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        [to] = envelope.rcpt_tos
        text = _plain_text(envelope.original_content)
        with self._lock:
            self.data_attempts[to] += 1
            hold = to in self.hold_data
            self.hold_data.discard(to)
            failures = self.fail_data.get(to, 0)
            if failures:
                self.fail_data[to] = failures - 1 if failures > 0 else failures
        if hold:
            self.holding.set()
            try:
                await asyncio.to_thread(self._released.wait, 60)
            except asyncio.CancelledError:
                # aiosmtpd cancels the handler when the client's connection is lost:
                # the whole message arrived, the client never heard whether it was taken.
                with self._lock:
                    self.unacknowledged.setdefault(to, []).append(text)
                raise
        if failures:
            return self.fail_reply
        with self._lock:
            self.accepted.setdefault(to, []).append(text)
        return "250 OK"


# --- a TCP proxy in front of RabbitMQ, to play an outage without touching it ----------


class TcpProxy(BaseTcpProxy):
    """The testkit's TCP proxy in front of RabbitMQ, made from the URL it stands in for."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        super().__init__(parts.hostname or "127.0.0.1", parts.port or 5672)
        self._upstream_url = upstream_url

    def url(self, **query: str) -> str:
        return self.url_for(self._upstream_url, **query)
