"""Fixtures of the exchange-rate tests: a rates stand-in on a free port, and settings
that point the catalogue at it, at this worker's Redis database under a key prefix
and job queue of their own (so parallel runs and other tests never share them)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import date

import aio_pika
import pytest
from redis.asyncio import Redis

from catalog.settings import CatalogSettings
from emporium_testkit.isolation import redis_url, worker_id
from fxstandin import RatesStandIn, StandInSettings

RATES_DATE = date(2026, 11, 30)
CATALOG_REDIS_OFFSET = 2


@pytest.fixture
async def standin() -> AsyncIterator[RatesStandIn]:
    async with RatesStandIn(StandInSettings(port=0, rates_date=RATES_DATE)) as running:
        yield running


@pytest.fixture
def fx_settings(settings: CatalogSettings, standin: RatesStandIn) -> CatalogSettings:
    tag = f"{worker_id()}-{uuid.uuid4().hex[:8]}"
    return settings.model_copy(
        update={
            "redis_url": redis_url(CATALOG_REDIS_OFFSET),
            "fx_provider_url": standin.url,
            "fx_cache_key_prefix": f"test-catalog-fx-{tag}:",
            "fx_local_cache_seconds": 0.0,
            "fx_fetch_when_empty": True,
            "fx_request_timeout_seconds": 0.5,
            "fx_read_timeout_seconds": 1.5,
            "fx_retry_attempts": 1,
            "jobs_queue": f"catalog.jobs.test-{tag}",
            "dead_letters_queue": f"emporium.dead-letters.test-{tag}",
            "jobs_retry_base_seconds": 0.05,
            "jobs_retry_max_seconds": 0.2,
            "worker_metrics_port": 0,
        }
    )


@pytest.fixture
async def redis(fx_settings: CatalogSettings) -> AsyncIterator[Redis]:
    client = Redis.from_url(fx_settings.redis_url, socket_timeout=2)
    yield client
    for prefix in (fx_settings.fx_cache_key_prefix, f"{fx_settings.jobs_queue}:"):
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def job_queues(fx_settings: CatalogSettings) -> AsyncIterator[None]:
    """Deletes the test's job queues (and their delay and rejected queues) afterwards."""
    yield
    queue = fx_settings.jobs_queue
    with contextlib.suppress(Exception):
        connection = await aio_pika.connect(fx_settings.amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel()
            for name in (
                queue,
                f"{queue}.delay",
                f"{queue}.rejected",
                fx_settings.dead_letters_queue,
            ):
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)


@pytest.fixture
def rates_key(fx_settings: CatalogSettings) -> str:
    """The Redis key of the cached rate table."""
    return f"{fx_settings.fx_cache_key_prefix}rates:{fx_settings.fx_base_currency}"
