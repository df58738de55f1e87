"""A service's job broker: taskiq on RabbitMQ (taskiq-aio-pika), with the kit's middlewares.

Topology, per service (``users``, ``catalog``...):

* ``emporium.jobs``: one durable direct exchange for every service's jobs;
* ``<service>.jobs``: the service's durable quorum queue, bound by its name.
  Messages are acknowledged after the job ran (taskiq's ``when_saved``), so a
  worker killed mid-job has its job delivered again;
* ``<service>.jobs.delay``: a classic queue holding retries until their
  per-message TTL (the backoff) expires, then dead-lettering them back to the
  job queue. Per-message TTLs expire in queue order, so a retry may wait until
  the one ahead of it is due: never longer than the longest backoff
  (``max_delay``).
* ``<service>.jobs.rejected``: where RabbitMQ puts a message the worker rejects
  outright (it never does by choice). Jobs that exhaust their retries go to the
  one dead-letter list instead (:mod:`emporium_kit.messaging.dead_letters`).
"""

from __future__ import annotations

import asyncio

from aio_pika import ExchangeType
from taskiq import TaskiqEvents, TaskiqMiddleware, TaskiqState
from taskiq_aio_pika import AioPikaBroker, Exchange, Queue, QueueType

from emporium_kit.messaging.broker import JOBS_EXCHANGE
from emporium_kit.messaging.dead_letters import DEAD_LETTERS_QUEUE

from .observability import JobLogContext, JobMetrics, job_tracing, sample_queue_depth
from .retries import JobRetries

DEFAULT_MAX_RETRIES = 5


def job_queue_name(service: str) -> str:
    return f"{service}.jobs"


def create_job_broker(
    service: str,
    amqp_url: str,
    *,
    prefetch: int = 20,
    max_retries: int = DEFAULT_MAX_RETRIES,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    dead_letters_queue: str = DEAD_LETTERS_QUEUE,
    queue: str | None = None,
    extra_middlewares: tuple[TaskiqMiddleware, ...] = (),
) -> AioPikaBroker:
    """The broker a service declares its jobs on and its worker consumes.

    Creating it does no I/O; ``startup()`` (the worker, or the service's
    lifespan for sending) connects. Every job gets, in this order: its trace
    (continuing the enqueuer's), its log context (job id, request id), its
    metrics, then retries with exponential backoff and full jitter up to its
    ``max_attempts`` label (default ``max_retries``), and its dead letter after.
    ``queue`` overrides the job queue's name (``<service>.jobs``): separate
    systems on one broker (parallel test runs) need separate queues.
    """
    queue = queue or job_queue_name(service)
    broker = AioPikaBroker(
        url=amqp_url,
        qos=prefetch,
        exchange=Exchange(name=JOBS_EXCHANGE, type=ExchangeType.DIRECT, durable=True),
        task_queues=[Queue(name=queue, type=QueueType.QUORUM, routing_key=queue)],
        delay_queue=Queue(name=f"{queue}.delay", type=QueueType.CLASSIC),
        dead_letter_queue=Queue(name=f"{queue}.rejected", type=QueueType.QUORUM),
        client_properties={"connection_name": f"{service}-jobs"},
    )
    sampling: list[asyncio.Task[None]] = []

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def _start_sampling(_: TaskiqState) -> None:
        sampling.append(asyncio.create_task(sample_queue_depth(broker, [queue])))

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
    async def _stop_sampling(_: TaskiqState) -> None:
        while sampling:
            sampling.pop().cancel()

    broker.add_middlewares(
        job_tracing(),
        JobLogContext(),
        JobMetrics(service),
        JobRetries(
            service=service,
            queue=queue,
            max_retries=max_retries,
            base_delay=base_delay,
            max_delay=max_delay,
            dead_letters_queue=dead_letters_queue,
        ),
        *extra_middlewares,
    )
    return broker
