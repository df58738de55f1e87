"""What every job shows from outside: its trace, its log lines, its metrics.

* Traces: taskiq's own OpenTelemetry middleware puts the sender's trace context
  in the job's labels and runs the job in a consumer span that continues it
  (jobs enqueued through the outbox get the relay's context the same way).
* Logs: every line a job writes carries ``job``, ``job_id`` and the
  ``request_id`` of the request that caused it.
* Metrics (Prometheus, labelled by job): enqueued, started, succeeded, failed,
  retried and dead-lettered counts, a duration histogram, and the depth of
  each job queue (sampled by the worker).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from emporium_kit.context import request_id_var
from emporium_kit.messaging.envelope import REQUEST_ID_HEADER
from emporium_kit.messaging.outbox import JOBS_ENQUEUED

JOBS_STARTED = Counter("jobs_started_total", "Job runs started (retries included)", ["job"])
JOBS_SUCCEEDED = Counter("jobs_succeeded_total", "Job runs that succeeded", ["job"])
JOBS_FAILED = Counter("jobs_failed_total", "Job runs that raised", ["job"])
JOBS_RETRIED = Counter("jobs_retried_total", "Failed runs scheduled again", ["job"])
JOBS_DEAD_LETTERED = Counter("jobs_dead_lettered_total", "Jobs given up on", ["job"])
JOB_DURATION = Histogram(
    "job_duration_seconds",
    "Time a job run took",
    ["job"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
JOB_QUEUE_DEPTH = Gauge("job_queue_depth", "Messages ready in a job queue", ["queue"])


def job_tracing() -> TaskiqMiddleware:
    """taskiq's OpenTelemetry middleware, on the process's tracer provider."""
    from taskiq.middlewares.opentelemetry_middleware import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware()


class JobLogContext(TaskiqMiddleware):
    """Binds the job's name, id and causing request id to every log line it writes."""

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        request_id = message.labels.get(REQUEST_ID_HEADER)
        structlog.contextvars.bind_contextvars(job=message.task_name, job_id=message.task_id)
        if isinstance(request_id, str):
            request_id_var.set(request_id)
            structlog.contextvars.bind_contextvars(request_id=request_id)
        return message

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        request_id = request_id_var.get()
        if request_id is not None:
            message.labels.setdefault(REQUEST_ID_HEADER, request_id)
        return message

    def post_save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        structlog.contextvars.unbind_contextvars("job", "job_id", "request_id")


class JobMetrics(TaskiqMiddleware):
    """Counts and times every job run."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service
        self._started: dict[str, float] = {}

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        if "_retries" not in message.labels:
            JOBS_ENQUEUED.labels(job=message.task_name).inc()
        return message

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        JOBS_STARTED.labels(job=message.task_name).inc()
        self._started[message.task_id] = time.perf_counter()
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        started = self._started.pop(message.task_id, None)
        if started is not None:
            JOB_DURATION.labels(job=message.task_name).observe(time.perf_counter() - started)
        if result.is_err:
            JOBS_FAILED.labels(job=message.task_name).inc()
        else:
            JOBS_SUCCEEDED.labels(job=message.task_name).inc()


async def sample_queue_depth(broker: Any, queues: list[str], *, every: float = 10.0) -> None:
    """Set :data:`JOB_QUEUE_DEPTH` for ``queues`` every ``every`` seconds, on the broker's
    channel (a passive declare: RabbitMQ's own count of ready messages). Runs until
    cancelled; a failed sample is logged and skipped."""
    log = structlog.get_logger(__name__)
    while True:
        channel = getattr(broker, "write_channel", None)
        if channel is not None and not channel.is_closed:
            for queue in queues:
                try:
                    # On the raw channel: aio-pika's robust channel answers a repeat
                    # declaration of a queue it knows from its own bookkeeping.
                    raw = await channel.get_underlay_channel()
                    declared = await raw.queue_declare(queue, passive=True)
                    count = declared.message_count or 0
                    JOB_QUEUE_DEPTH.labels(queue=queue).set(count)
                except Exception as exc:  # a missing queue or a lost channel
                    log.warning("queue_depth_sample_failed", queue=queue, error=repr(exc))
        await asyncio.sleep(every)
