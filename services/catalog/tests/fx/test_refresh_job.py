"""The refresh job, through the catalogue worker (taskiq's receiver in this event loop,
the real job queue on RabbitMQ): it fills Redis with the provider's table and its as-of;
with the provider down it keeps the last table and ends without a retry or dead letter.
The clean-up job deletes old published outbox and processed inbox rows only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine
from taskiq.receiver import Receiver

from catalog.adapters.db.tables import inbox, outbox
from catalog.settings import CatalogSettings
from catalog.worker import CatalogWorker, build_worker
from emporium_testkit.isolation import truncate_all
from fxstandin import RatesStandIn

RATES_DATE = date(2026, 11, 30)  # the stand-in's (conftest)

pytestmark = pytest.mark.usefixtures("job_queues")


@contextlib.asynccontextmanager
async def running_worker(settings: CatalogSettings) -> AsyncIterator[CatalogWorker]:
    """The catalogue worker of ``settings`` consuming in this event loop, as
    ``python -m catalog.worker`` does in its process."""
    worker = build_worker(settings)
    broker = worker.broker
    broker.is_worker_process = True
    await broker.startup()
    finish = asyncio.Event()
    receiver = Receiver(broker, max_async_tasks=4, run_startup=False)
    listening = asyncio.create_task(receiver.listen(finish), name="catalog-worker")
    try:
        yield worker
    finally:
        finish.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(listening, 15)
        await broker.shutdown()
        for source in worker.scheduler.sources:
            await source.shutdown()


async def wait_until(condition: Callable[[], Awaitable[Any]], *, within: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        outcome = await condition()
        if outcome:
            return outcome
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not met within {within}s (last: {outcome!r})")
        await asyncio.sleep(0.05)


async def test_the_refresh_job_fills_redis_with_the_table_and_its_as_of(
    fx_settings: CatalogSettings, redis: Redis, standin: RatesStandIn, rates_key: str
) -> None:
    before = datetime.now(UTC)
    async with running_worker(fx_settings) as worker:
        await worker.jobs.refresh_exchange_rates.kiq()
        raw = await wait_until(lambda: redis.get(rates_key))

    table = json.loads(raw)
    assert table["base"] == "USD"
    assert table["date"] == RATES_DATE.isoformat()
    assert table["rates"]["EUR"] == "0.9208"
    assert table["rates"]["KWD"] == "0.3075"
    assert before <= datetime.fromisoformat(table["fetched_at"]) <= datetime.now(UTC)
    assert standin.behaviour.requests == 1


async def test_with_the_provider_down_the_job_keeps_the_last_table_and_gives_up_quietly(
    fx_settings: CatalogSettings, redis: Redis, standin: RatesStandIn, rates_key: str
) -> None:
    async with running_worker(fx_settings) as worker:
        await worker.jobs.refresh_exchange_rates.kiq()
        first = await wait_until(lambda: redis.get(rates_key))
        standin.behaviour.fail_status = 503
        standin.behaviour.multiplier = standin.behaviour.multiplier * 2  # would change rates

        await worker.jobs.refresh_exchange_rates.kiq()
        await wait_until(lambda: _at_least(standin, 2))
        await asyncio.sleep(0.5)  # a retry would come within the backoff (0.2 s at most)

    assert await redis.get(rates_key) == first
    assert standin.behaviour.requests == 2  # no job retry: the next tick tries again


async def _at_least(standin: RatesStandIn, requests: int) -> bool:
    return standin.behaviour.requests >= requests


async def test_the_clean_up_job_prunes_old_outbox_and_inbox_rows_only(
    fx_settings: CatalogSettings, redis: Redis
) -> None:
    await truncate_all(fx_settings.database_url)
    engine = create_async_engine(fx_settings.database_url)
    old, recent, unpublished = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    old_in, new_in = uuid.uuid4(), uuid.uuid4()
    try:
        async with engine.begin() as conn:
            now = datetime.now(UTC)
            for row_id, age, published in (
                (old, timedelta(days=10), True),
                (recent, timedelta(days=1), True),
                (unpublished, timedelta(days=10), False),
            ):
                await conn.execute(
                    sa.insert(outbox).values(
                        id=row_id,
                        routing_key="catalog.product_created.v1",
                        payload={},
                        occurred_at=now - age,
                        published_at=now - age if published else None,
                    )
                )
            for row_id, age in ((old_in, timedelta(days=10)), (new_in, timedelta(hours=1))):
                await conn.execute(
                    sa.insert(inbox).values(
                        message_id=row_id, consumer="catalog.test", processed_at=now - age
                    )
                )
        async with running_worker(fx_settings) as worker:
            await worker.jobs.prune_outbox_and_inbox.kiq()

            async def pruned() -> bool:
                async with engine.connect() as conn:
                    count = await conn.scalar(sa.select(sa.func.count()).select_from(inbox))
                return count == 1

            await wait_until(pruned)
        async with engine.connect() as conn:
            outbox_ids = set((await conn.execute(sa.select(outbox.c.id))).scalars())
            inbox_ids = set((await conn.execute(sa.select(inbox.c.message_id))).scalars())
    finally:
        await engine.dispose()

    assert outbox_ids == {recent, unpublished}
    assert inbox_ids == {new_in}
