"""The catalogue worker's composition root: its job broker, its jobs, its scheduler.

``python -m catalog.worker`` runs the jobs (taskiq's worker process), ``python -m
catalog.scheduler`` sends the periodic ones (each tick once across schedulers: the
kit's ``OncePerTick`` lease in Redis); both name this module's ``broker`` and
``scheduler``, built from the environment at import without any I/O. The jobs'
parts (engine, Redis, the rates client) are built when the broker starts (taskiq's
``WORKER_STARTUP`` event) and closed when it stops. Tests build a worker of their
own from their settings with :func:`build_worker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from redis.asyncio import Redis
from taskiq import TaskiqEvents, TaskiqScheduler, TaskiqState
from taskiq_aio_pika import AioPikaBroker

from catalog.adapters.exchange_rates import exchange_rates, rates_redis
from catalog.settings import CatalogSettings
from catalog.worker.jobs import CatalogJobs, WorkerComponents, declare_jobs
from emporium_kit.database import create_engine
from emporium_kit.jobs import WorkerParts, create_worker_broker, observe_worker_process
from emporium_kit.settings import load_settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CatalogWorker:
    broker: AioPikaBroker
    scheduler: TaskiqScheduler
    jobs: CatalogJobs


def build_worker(settings: CatalogSettings, *, process: bool = False) -> CatalogWorker:
    """The broker with every catalogue job declared, and the scheduler that sends them.
    ``process`` (the worker process) also configures logging, tracing and metrics."""
    broker, scheduler = create_worker_broker("catalog", settings)
    running: WorkerParts[WorkerComponents] = WorkerParts("catalogue")
    jobs = declare_jobs(
        broker,
        running.get,
        refresh_every=settings.fx_refresh_seconds,
        cleanup_every=settings.cleanup_interval_seconds,
    )
    redis_clients: list[Redis] = []

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def start(_: TaskiqState) -> None:
        if process:
            observe_worker_process("catalog-worker", settings, host=settings.host)
        engine = create_engine(settings.database, application_name="catalog-worker")
        redis = rates_redis(settings, for_reads=False)
        redis_clients.append(redis)
        running.start(
            WorkerComponents(
                rates=exchange_rates(settings, redis, for_reads=False),
                engine=engine,
                prune_after=timedelta(days=settings.prune_messages_after_days),
            )
        )
        log.info("catalog_worker_started", jobs=sorted(broker.get_all_tasks()))

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
    async def stop(_: TaskiqState) -> None:
        components = running.stop()
        if components is not None:
            await components.rates.aclose()
            await components.engine.dispose()
        while redis_clients:
            await redis_clients.pop().aclose()
        log.info("catalog_worker_stopped")

    return CatalogWorker(broker=broker, scheduler=scheduler, jobs=jobs)


settings = load_settings(CatalogSettings, "catalog-worker")
_worker = build_worker(settings, process=True)
broker = _worker.broker
scheduler = _worker.scheduler
