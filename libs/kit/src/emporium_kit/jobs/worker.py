"""What every service's worker composition root shares (``<service>.worker``).

A service with jobs builds its worker from its :class:`~emporium_kit.settings.JobsSettings`:
:func:`create_worker_broker` gives the broker (queues, retries, dead letters) and
the scheduler of its periodic jobs; :class:`WorkerParts` holds the parts its jobs
use (an engine, clients) from the broker's start to its stop, so a job run outside
them fails loudly; :func:`observe_worker_process` configures a worker process's
logs, traces and Prometheus ``/metrics`` (process *i* of ``worker_processes``
serves them on ``worker_metrics_port`` + *i*: taskiq names its processes
``worker-<i>``).
"""

from __future__ import annotations

import multiprocessing
from typing import Generic, TypeVar

from prometheus_client import start_http_server
from taskiq import TaskiqScheduler
from taskiq_aio_pika import AioPikaBroker

from emporium_kit.jobs.broker import create_job_broker
from emporium_kit.jobs.scheduler import create_scheduler
from emporium_kit.logging import configure_logging
from emporium_kit.settings import JobsSettings
from emporium_kit.tracing import configure_tracing

T = TypeVar("T")


class WorkerParts(Generic[T]):
    """The parts a service's jobs use, set while the broker runs."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._parts: T | None = None

    def start(self, parts: T) -> None:
        self._parts = parts

    def stop(self) -> T | None:
        """The parts to close (None if the worker never started); no job gets them after."""
        parts, self._parts = self._parts, None
        return parts

    def get(self) -> T:
        if self._parts is None:
            raise RuntimeError(f"the {self._service} worker has not started")
        return self._parts


def create_worker_broker(
    service: str, settings: JobsSettings
) -> tuple[AioPikaBroker, TaskiqScheduler]:
    """The service's job broker and the scheduler that sends its periodic jobs (each
    tick's lease under the queue's name in Redis)."""
    broker = create_job_broker(
        service,
        settings.amqp_url,
        prefetch=settings.worker_concurrency,
        base_delay=settings.jobs_retry_base_seconds,
        max_delay=settings.jobs_retry_max_seconds,
        dead_letters_queue=settings.dead_letters_queue,
        queue=settings.jobs_queue,
    )
    scheduler = create_scheduler(broker, settings.redis_url, key_prefix=f"{settings.jobs_queue}:")
    return broker, scheduler


def worker_process_index() -> int:
    """Which of taskiq's worker processes this is (it names them ``worker-<i>``); 0 outside."""
    name = multiprocessing.current_process().name
    prefix, _, index = name.rpartition("-")
    return int(index) if prefix == "worker" and index.isdigit() else 0


def worker_metrics_port(settings: JobsSettings) -> int:
    """The port this worker process serves ``/metrics`` on; 0: none."""
    if not settings.worker_metrics_port:
        return 0
    return settings.worker_metrics_port + worker_process_index()


def observe_worker_process(name: str, settings: JobsSettings, *, host: str) -> None:
    """Logs, traces and ``/metrics`` (on ``host``) of the worker process ``name``
    (``"catalog-worker"``): called once the process starts its broker."""
    configure_logging(name, level=settings.log_level, json=settings.log_json)
    configure_tracing(name)
    port = worker_metrics_port(settings)
    if port:
        start_http_server(port, addr=host)
