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

from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from prometheus_client import start_http_server
from redis.asyncio import Redis
from taskiq import TaskiqEvents, TaskiqScheduler, TaskiqState
from taskiq_aio_pika import AioPikaBroker

from catalog.adapters.exchange_rates import exchange_rates, rates_redis
from catalog.settings import CatalogSettings
from catalog.worker.jobs import CatalogJobs, WorkerComponents, declare_jobs
from emporium_kit.database import create_engine
from emporium_kit.jobs import create_job_broker, create_scheduler
from emporium_kit.logging import configure_logging
from emporium_kit.settings import load_settings
from emporium_kit.tracing import configure_tracing

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CatalogWorker:
    broker: AioPikaBroker
    scheduler: TaskiqScheduler
    jobs: CatalogJobs


@dataclass(slots=True)
class _Running:
    """The jobs' parts while the broker runs."""

    components: WorkerComponents | None = field(default=None)

    def get(self) -> WorkerComponents:
        if self.components is None:
            raise RuntimeError("the catalogue worker has not started")
        return self.components


def build_worker(settings: CatalogSettings, *, process: bool = False) -> CatalogWorker:
    """The broker with every catalogue job declared, and the scheduler that sends them.
    ``process`` (the worker process) also configures logging, tracing and metrics."""
    broker = create_job_broker(
        "catalog",
        settings.amqp_url,
        prefetch=settings.worker_concurrency,
        base_delay=settings.jobs_retry_base_seconds,
        max_delay=settings.jobs_retry_max_seconds,
        dead_letters_queue=settings.dead_letters_queue,
        queue=settings.jobs_queue,
    )
    scheduler = create_scheduler(broker, settings.redis_url, key_prefix=f"{settings.jobs_queue}:")
    running = _Running()
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
            configure_logging("catalog-worker", level=settings.log_level, json=settings.log_json)
            configure_tracing("catalog-worker")
            if settings.worker_metrics_port:
                start_http_server(settings.worker_metrics_port, addr=settings.host)
        engine = create_engine(settings.database, application_name="catalog-worker")
        redis = rates_redis(settings, for_reads=False)
        redis_clients.append(redis)
        running.components = WorkerComponents(
            rates=exchange_rates(settings, redis, for_reads=False),
            engine=engine,
            prune_after=timedelta(days=settings.prune_messages_after_days),
        )
        log.info("catalog_worker_started", jobs=sorted(broker.get_all_tasks()))

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
    async def stop(_: TaskiqState) -> None:
        components, running.components = running.components, None
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
