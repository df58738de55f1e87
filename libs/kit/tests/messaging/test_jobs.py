"""The jobs part against a real RabbitMQ and PostgreSQL: outbox enqueue, retries, dead letters.

Each test has a service of its own (so its own job queues) and its own
dead-letter list, and runs taskiq's real receiver in the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from taskiq import Context, ScheduledTask, TaskiqDepends
from taskiq.exceptions import ScheduledTaskCancelledError
from taskiq.receiver import Receiver
from taskiq_aio_pika import AioPikaBroker

from emporium_kit.jobs import PermanentJobError, add_job, create_job_broker, first_run
from emporium_kit.jobs.observability import sample_queue_depth
from emporium_kit.jobs.scheduler import OncePerTick, tick_of
from emporium_kit.messaging.dead_letters import DeadLetter
from emporium_kit.messaging.relay import OutboxRelay

from .support import AMQP_URL, MessagingTables, wait_until

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def service() -> str:
    return f"kittest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def broker(
    service: str, dead_letters: AbstractQueue, amqp_channel: AbstractChannel
) -> AsyncIterator[AioPikaBroker]:
    broker = create_job_broker(
        service,
        AMQP_URL,
        max_retries=4,
        base_delay=0.05,
        max_delay=0.2,
        dead_letters_queue=dead_letters.name,
    )
    broker.is_worker_process = True
    yield broker
    await broker.shutdown()
    for suffix in ("", ".delay", ".rejected"):
        with contextlib.suppress(Exception):
            await amqp_channel.queue_delete(f"{service}.jobs{suffix}")


@pytest.fixture
async def run_worker(broker: AioPikaBroker) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Starts taskiq's receiver on ``broker`` (after the test registered its jobs)."""
    finish = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        await broker.startup()
        receiver = Receiver(broker, max_async_tasks=10, run_startup=False)
        tasks.append(asyncio.create_task(receiver.listen(finish)))

    yield start
    finish.set()
    for task in tasks:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def effects(engine: AsyncEngine) -> AsyncIterator[sa.Table]:
    """A table a test's jobs write their effect to, one row per effect."""
    metadata = sa.MetaData()
    table = sa.Table(
        f"effects_{uuid.uuid4().hex[:10]}",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("value", sa.Integer, nullable=False),
    )
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield table
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)


async def _effects(engine: AsyncEngine, table: sa.Table) -> list[tuple[str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(table.c.job_id, table.c.value).order_by(table.c.id))
        return [(row.job_id, row.value) for row in rows]


async def _next_letter(queue: AbstractQueue) -> DeadLetter:
    got: list[AbstractIncomingMessage] = []

    async def arrived() -> bool:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            got.append(message)
        return bool(got)

    await wait_until(arrived, within=15)
    return DeadLetter.model_validate_json(got[0].body)


def _metric(name: str, job: str) -> float:
    return REGISTRY.get_sample_value(name, {"job": job}) or 0.0


async def test_a_job_enqueued_with_its_change_runs_once_and_never_for_a_rollback(
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
    effects: sa.Table,
    broker: AioPikaBroker,
    run_worker: Callable[[], Awaitable[None]],
    service: str,
) -> None:
    @broker.task(task_name=f"{service}.record")
    async def record(value: int) -> None:
        async with session_factory() as session, session.begin():
            await session.execute(sa.insert(effects).values(job_id="-", value=value))

    async with session_factory() as session, session.begin():
        kept = await add_job(session, tables.outbox, f"{service}.jobs", record, value=1)
    with contextlib.suppress(RuntimeError):
        async with session_factory() as session, session.begin():
            await add_job(session, tables.outbox, f"{service}.jobs", record, value=2)
            raise RuntimeError("the change is rolled back, and its job with it")

    await run_worker()
    relay = OutboxRelay(engine, tables.outbox, AMQP_URL, name="kit-jobs-relay")
    try:
        assert await relay.publish_pending() == 1
    finally:
        await relay.close()
    await wait_until(lambda: _effects(engine, effects), within=15)
    await asyncio.sleep(0.3)
    assert await _effects(engine, effects) == [("-", 1)]
    assert kept.version == 4  # the job id: a random UUID


async def test_a_job_failing_twice_then_succeeding_has_one_effect(
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
    effects: sa.Table,
    broker: AioPikaBroker,
    run_worker: Callable[[], Awaitable[None]],
    service: str,
) -> None:
    attempts: list[float] = []
    name = f"{service}.flaky"

    @broker.task(task_name=name)
    async def flaky(value: int, context: Context = TaskiqDepends()) -> None:
        attempts.append(time.monotonic())
        async with session_factory() as session, session.begin():
            # The effect and the job id commit together; a failure rolls both back.
            job_id = context.message.task_id
            if await first_run(session, tables.inbox, job=name, job_id=job_id):
                await session.execute(sa.insert(effects).values(job_id=job_id, value=value))
            if len(attempts) < 3:
                raise ConnectionError("the provider is down")

    await run_worker()
    sent = await flaky.kiq(7)
    await wait_until(lambda: len(attempts) >= 3, within=15)
    await asyncio.sleep(0.5)  # no fourth run comes
    assert len(attempts) == 3
    assert await _effects(engine, effects) == [(sent.task_id, 7)]
    assert _metric("jobs_retried_total", name) == 2
    assert _metric("jobs_failed_total", name) == 2
    assert _metric("jobs_succeeded_total", name) == 1
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(gap < 1.0 for gap in gaps)  # backoff capped at max_delay (+ scheduling)


async def test_a_job_failing_past_its_limit_is_dead_lettered_and_its_replay_runs_once(
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
    effects: sa.Table,
    broker: AioPikaBroker,
    run_worker: Callable[[], Awaitable[None]],
    dead_letters: AbstractQueue,
    amqp_channel: AbstractChannel,
    service: str,
) -> None:
    provider_up = False
    runs: list[str] = []
    name = f"{service}.charge"

    @broker.task(task_name=name, max_attempts=3)
    async def charge(value: int, context: Context = TaskiqDepends()) -> None:
        job_id = context.message.task_id
        runs.append(job_id)
        if not provider_up:
            raise TimeoutError("the provider did not answer")
        async with session_factory() as session, session.begin():
            if await first_run(session, tables.inbox, job=name, job_id=job_id):
                await session.execute(sa.insert(effects).values(job_id=job_id, value=value))

    await run_worker()
    sent = await charge.kiq(5)
    letter = await _next_letter(dead_letters)
    assert len(runs) == 3  # its own limit, not the broker's default of 4
    assert (letter.kind, letter.name, letter.message_id) == ("job", name, sent.task_id)
    assert (letter.queue, letter.service, letter.attempts) == (f"{service}.jobs", service, 3)
    assert letter.last_error == "TimeoutError: the provider did not answer"
    assert letter.first_failed_at <= letter.last_failed_at
    assert _metric("jobs_dead_lettered_total", name) == 1

    provider_up = True
    for _ in range(2):  # replayed twice (the ops service refuses that; the job copes anyway)
        await amqp_channel.default_exchange.publish(
            letter.replay_message(), routing_key=letter.queue
        )
    await wait_until(lambda: len(runs) == 5, within=15)
    await asyncio.sleep(0.3)
    assert await _effects(engine, effects) == [(sent.task_id, 5)]


async def test_an_error_retrying_cannot_fix_is_dead_lettered_at_once(
    broker: AioPikaBroker,
    run_worker: Callable[[], Awaitable[None]],
    dead_letters: AbstractQueue,
    service: str,
) -> None:
    runs: list[int] = []

    @broker.task(task_name=f"{service}.refused")
    async def refused(value: int) -> None:
        runs.append(value)
        raise PermanentJobError("the provider answered 422: card number invalid")

    await run_worker()
    await refused.kiq(1)
    letter = await _next_letter(dead_letters)
    assert runs == [1]
    assert letter.attempts == 1
    assert letter.last_error.startswith("PermanentError: the provider answered 422")


async def test_each_tick_is_sent_by_one_scheduler_only() -> None:
    redis = Redis.from_url(REDIS_URL)
    prefix = f"kittest-{uuid.uuid4().hex}:"
    schedulers = [OncePerTick(None, redis, key_prefix=prefix) for _ in range(5)]  # type: ignore[arg-type]
    task = ScheduledTask(
        task_name="prune", labels={}, args=[], kwargs={}, schedule_id="kit.prune", interval=3600
    )

    async def attempt(source: OncePerTick) -> bool:
        try:
            await source.pre_send(task)
        except ScheduledTaskCancelledError:
            return False
        return True

    try:
        sent = await asyncio.gather(*(attempt(source) for source in schedulers))
        assert sent.count(True) == 1
        again = await asyncio.gather(*(attempt(source) for source in schedulers))
        assert again.count(True) == 0  # the same tick, later: already sent
    finally:
        await redis.aclose()


def test_ticks_are_whole_intervals_since_the_epoch() -> None:
    every_ten = ScheduledTask(task_name="t", labels={}, args=[], kwargs={}, interval=10)
    assert tick_of(every_ten, 1000.0) == (100, 20)
    assert tick_of(every_ten, 1009.9) == (100, 20)
    assert tick_of(every_ten, 1010.0) == (101, 20)
    cron = ScheduledTask(task_name="t", labels={}, args=[], kwargs={}, cron="* * * * *")
    assert tick_of(cron, 120.5) == (2, 120)


async def test_outbox_lag_and_queue_depth_are_measured(
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
    broker: AioPikaBroker,
    service: str,
) -> None:
    @broker.task(task_name=f"{service}.noop")
    async def noop() -> None:
        return None

    relay = OutboxRelay(engine, tables.outbox, AMQP_URL, name="kit-lag-relay")
    try:
        assert await relay.sample_lag() == (0.0, 0)
        async with session_factory() as session, session.begin():
            for _ in range(3):
                await add_job(session, tables.outbox, f"{service}.jobs", noop)
        await asyncio.sleep(0.05)
        lag, pending = await relay.sample_lag()
        assert pending == 3
        assert lag > 0
        labels = {"outbox": tables.outbox.name}
        assert REGISTRY.get_sample_value("outbox_pending_rows", labels) == 3
        await broker.startup()  # declares the job queue; nothing consumes it here
        assert await relay.publish_pending() == 3
        assert (await relay.sample_lag())[1] == 0
    finally:
        await relay.close()

    sampling = asyncio.create_task(sample_queue_depth(broker, [f"{service}.jobs"], every=0.05))
    try:
        queue = {"queue": f"{service}.jobs"}
        await wait_until(lambda: REGISTRY.get_sample_value("job_queue_depth", queue) == 3)
    finally:
        sampling.cancel()


async def test_a_job_whose_queue_does_not_exist_yet_stays_in_the_outbox_until_it_does(
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
    broker: AioPikaBroker,
    service: str,
) -> None:
    @broker.task(task_name=f"{service}.later")
    async def later() -> None:
        return None

    async with session_factory() as session, session.begin():
        await add_job(session, tables.outbox, f"{service}.jobs", later)
    relay = OutboxRelay(
        engine, tables.outbox, AMQP_URL, name="kit-unroutable", retry_base_delay=0.01,
        retry_max_delay=0.01,
    )  # fmt: skip
    try:
        assert await relay.publish_pending() == 0  # no worker has declared the queue: unroutable
        async with engine.connect() as conn:
            row = (await conn.execute(sa.select(tables.outbox))).one()
        assert row.published_at is None
        assert row.attempts == 1
        assert row.last_error
        await broker.startup()  # a worker starts: the queue exists
        await asyncio.sleep(0.05)
        assert await relay.publish_pending() == 1
    finally:
        await relay.close()
