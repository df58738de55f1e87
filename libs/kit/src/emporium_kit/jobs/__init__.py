"""The jobs part: background work on RabbitMQ with taskiq (ADR 0012).

* :func:`create_job_broker`: a service's broker, queues and middlewares
  (tracing, log context, metrics, retries with backoff, dead letters);
* :func:`add_job`: enqueue with the database change that causes it (the outbox);
  :func:`first_run`: a job's effect happens once per job id (the inbox);
* :class:`PermanentJobError`: an error retrying cannot fix (straight to dead letters);
* :func:`create_scheduler`: periodic jobs, each tick once across schedulers;
* :func:`run_worker`, :func:`run_scheduler`: the two processes;
* :func:`create_worker_broker`, :class:`WorkerParts`, :func:`observe_worker_process`:
  what a service's worker composition root shares.

Needs ``emporium-kit[jobs]`` (taskiq, taskiq-aio-pika; with the database and
messaging parts for the outbox).
"""

from emporium_kit.jobs.broker import create_job_broker, job_queue_name
from emporium_kit.jobs.processes import run_scheduler, run_worker
from emporium_kit.jobs.retries import MAX_ATTEMPTS_LABEL, PermanentJobError
from emporium_kit.jobs.scheduler import create_scheduler
from emporium_kit.jobs.worker import (
    WorkerParts,
    create_worker_broker,
    observe_worker_process,
    worker_metrics_port,
    worker_process_index,
)
from emporium_kit.messaging.inbox import first_run
from emporium_kit.messaging.outbox import Job, add_job
from emporium_kit.retrying import is_retryable

__all__ = [
    "MAX_ATTEMPTS_LABEL",
    "Job",
    "PermanentJobError",
    "WorkerParts",
    "add_job",
    "create_job_broker",
    "create_scheduler",
    "create_worker_broker",
    "first_run",
    "is_retryable",
    "job_queue_name",
    "observe_worker_process",
    "run_scheduler",
    "run_worker",
    "worker_metrics_port",
    "worker_process_index",
]
