"""The users worker's composition root: its job broker, its jobs, its scheduler.

``python -m users.worker`` runs the jobs (taskiq's worker process), ``python
-m users.scheduler`` sends the periodic ones; both name this module's
``broker`` and ``scheduler``, built from the environment at import without
any I/O. The jobs' parts (engine, SMTP sender...) are built when the broker
starts (taskiq's ``WORKER_STARTUP`` event) and closed when it stops. Tests
build a worker of their own from their settings with :func:`build_worker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from redis.asyncio import Redis
from taskiq import TaskiqEvents, TaskiqScheduler, TaskiqState
from taskiq_aio_pika import AioPikaBroker

from emporium_kit.database import create_engine, create_session_factory
from emporium_kit.jobs import WorkerParts, create_worker_broker, observe_worker_process
from emporium_kit.settings import load_settings
from users.adapters.signing_keys import load_signing_key
from users.composition import build_ports
from users.settings import UsersSettings
from users.worker.jobs import UsersJobs, WorkerComponents, declare_jobs

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class UsersWorker:
    broker: AioPikaBroker
    scheduler: TaskiqScheduler
    jobs: UsersJobs


def build_worker(settings: UsersSettings, *, process: bool = False) -> UsersWorker:
    """The broker with every users job declared, and the scheduler that sends the periodic
    ones. ``process`` (the worker process) also configures logging, tracing and metrics."""
    broker, scheduler = create_worker_broker("users", settings)
    running: WorkerParts[WorkerComponents] = WorkerParts("users")
    jobs = declare_jobs(broker, running.get, cleanup_every=settings.cleanup_interval_seconds)
    redis_clients: list[Redis] = []

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def start(_: TaskiqState) -> None:
        if process:
            observe_worker_process("users-worker", settings, host=settings.host)
        # The pool stays USERS_DB_POOL_SIZE (+ overflow): a job holds its connection
        # while SMTP answers, so more concurrent jobs than connections wait for one,
        # but a pool per concurrent job would take half of PostgreSQL's default
        # 100 connections for one worker process.
        engine = create_engine(settings.database, application_name="users-worker")
        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        redis_clients.append(redis)
        key = load_signing_key(
            settings.jwt_private_key.get_secret_value() if settings.jwt_private_key else None,
            settings.jwt_private_key_file,
        )
        running.start(
            WorkerComponents(
                ports=build_ports(settings, engine=engine, redis=redis, key=key),
                engine=engine,
                sessions=create_session_factory(engine),
                prune_after=timedelta(days=settings.prune_messages_after_days),
            )
        )
        log.info("users_worker_started", jobs=sorted(broker.get_all_tasks()))

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
    async def stop(_: TaskiqState) -> None:
        components = running.stop()
        if components is not None:
            await components.ports.emails.aclose()
            await components.engine.dispose()
        while redis_clients:
            await redis_clients.pop().aclose()
        log.info("users_worker_stopped")

    return UsersWorker(broker=broker, scheduler=scheduler, jobs=jobs)


settings = load_settings(UsersSettings, "users-worker")
_worker = build_worker(settings, process=True)
broker = _worker.broker
scheduler = _worker.scheduler
