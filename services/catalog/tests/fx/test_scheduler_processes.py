"""Two ``python -m catalog.scheduler`` processes and one ``python -m catalog.worker``, with
the refresh and clean-up every second: each tick is sent by one scheduler only (the
kit's OncePerTick lease in Redis), though both try every tick, and the worker runs it
once, filling Redis with the stand-in's rates.

How runs are counted: a scheduler logs ``schedule_tick_sent`` (schedule, tick) only for
the ticks whose lease it won, taskiq logs "Sending task ... with schedule_id ..." for
every tick it tries; the worker logs one line per run (``fx_refresh_done``,
``messages_pruned``) with the run's job id.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aio_pika
import orjson
import pytest
from redis.asyncio import Redis

from catalog.settings import CatalogSettings
from emporium_testkit.processes import ChildProcess

pytestmark = pytest.mark.usefixtures("job_queues")

SCHEDULES = {
    "catalog.refresh-exchange-rates": "fx_refresh_done",
    "catalog.prune-outbox-and-inbox": "messages_pruned",
}
TICKS = 4  # seconds of ticks observed (the interval is 1 s)


def process_env(settings: CatalogSettings) -> dict[str, str]:
    return {
        "CATALOG_DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "AMQP_URL": settings.amqp_url,
        "DEAD_LETTERS_QUEUE": settings.dead_letters_queue,
        "CATALOG_JOBS_QUEUE": settings.jobs_queue,
        "CATALOG_FX_PROVIDER_URL": settings.fx_provider_url,
        "CATALOG_FX_CACHE_KEY_PREFIX": settings.fx_cache_key_prefix,
        "CATALOG_FX_REFRESH_SECONDS": "1",
        "CATALOG_CLEANUP_INTERVAL_SECONDS": "1",
        "CATALOG_WORKER_METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
    }


def log_lines(output: str) -> Iterator[dict[str, Any]]:
    for line in output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(line)
                if isinstance(parsed, dict):
                    yield parsed


def events_named(output: str, event: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(output) if line.get("event") == event]


def tried(output: str, schedule: str) -> int:
    return sum(
        1
        for line in log_lines(output)
        if str(line.get("event", "")).startswith("Sending task")
        and f"schedule_id {schedule}." in str(line["event"])
    )


async def consumers_of(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return 0
        return int(declared.declaration_result.consumer_count or 0)


async def wait_for(condition: Any, *, within: float = 30.0, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(0.1)


@pytest.fixture
async def worker(fx_settings: CatalogSettings) -> AsyncIterator[ChildProcess]:
    process = ChildProcess("catalog.worker", env=process_env(fx_settings))

    async def consuming() -> bool:
        if process.output() and "Traceback" in process.output():
            raise AssertionError(process.output()[-4000:])
        return await consumers_of(fx_settings.amqp_url, fx_settings.jobs_queue) > 0

    try:
        await wait_for(consuming, what="catalog.worker consuming")
        yield process
    finally:
        await asyncio.to_thread(process.stop)


async def test_two_schedulers_send_each_tick_once_and_the_worker_refreshes_the_rates(
    fx_settings: CatalogSettings, worker: ChildProcess, redis: Redis, rates_key: str
) -> None:
    schedulers = [ChildProcess("catalog.scheduler", env=process_env(fx_settings)) for _ in range(2)]
    try:

        async def both_ticking() -> bool:
            return all(tried(s.output(), next(iter(SCHEDULES))) for s in schedulers)

        await wait_for(both_ticking, what="both schedulers ticking")
        await asyncio.sleep(TICKS)
        await asyncio.sleep((0.5 - time.time() % 1) % 1)  # half-way between two ticks
        for scheduler in schedulers:
            scheduler.send_signal(signal.SIGTERM)
        for scheduler in schedulers:
            await asyncio.to_thread(scheduler.wait, 10)
        outputs = [scheduler.output() for scheduler in schedulers]
    finally:
        for scheduler in schedulers:
            await asyncio.to_thread(scheduler.stop)

    sent = [line for output in outputs for line in events_named(output, "schedule_tick_sent")]
    per_tick = Counter((line["schedule"], line["tick"]) for line in sent)
    assert set(per_tick.values()) == {1}, per_tick  # no tick sent twice
    ticks = {s: sorted(t for (name, t) in per_tick if name == s) for s in SCHEDULES}
    for schedule, schedule_ticks in ticks.items():
        assert len(schedule_ticks) >= TICKS, (schedule, schedule_ticks)
        for output in outputs:  # both tried (nearly) every tick: the lease kept them apart
            assert tried(output, schedule) >= len(schedule_ticks) - 2, (schedule, output)

    def runs() -> dict[str, list[object]]:
        output = worker.output()
        return {
            s: [line["job_id"] for line in events_named(output, e)] for s, e in SCHEDULES.items()
        }

    async def every_tick_run() -> bool:
        return all(len(runs()[s]) >= len(t) for s, t in ticks.items())

    await wait_for(every_tick_run, within=15, what="every tick run")
    await asyncio.sleep(0.3)  # a second run of a tick would come with the first
    for schedule, job_ids in runs().items():
        assert len(job_ids) == len(ticks[schedule]), (schedule, ticks[schedule], job_ids)
        assert len(set(job_ids)) == len(job_ids)
    cached = await redis.get(rates_key)
    assert cached is not None
    assert orjson.loads(cached)["rates"]["EUR"] == "0.9208"
