"""RabbitMQ connection and the topology every Emporium service shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
)
from pamqp.common import FieldTable

EXCHANGE = "emporium.events"
"""The topic exchange all domain events are published to, by routing key."""

JOBS_EXCHANGE = "emporium.jobs"
"""The direct exchange every service's job queue is bound to, by the queue's name
(``<service>.jobs``); the outbox relay publishes enqueued jobs there."""

DEAD_LETTER_EXCHANGE = "emporium.dlx"
"""Direct exchange receiving what a queue gives up on, routed by the queue's name."""

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_RECONNECT_INTERVAL = 5.0


def rabbitmq_check(amqp_url: str, timeout: float = 2.0) -> Callable[[], Awaitable[None]]:
    """A readiness check (``emporium_kit.health``): the broker accepts a connection."""

    async def check() -> None:
        connection = await aio_pika.connect(amqp_url, timeout=timeout)
        await connection.close()

    return check


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dlq"


async def connect(
    amqp_url: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    reconnect_interval: float = DEFAULT_RECONNECT_INTERVAL,
    client_name: str | None = None,
) -> AbstractRobustConnection:
    """Open a robust connection: it fails fast if the broker is unreachable now, and
    once open it reconnects by itself, restoring channels, queues and consumers."""
    client_properties: FieldTable = {"connection_name": client_name} if client_name else {}
    return await aio_pika.connect_robust(
        amqp_url,
        timeout=connect_timeout,
        reconnect_interval=reconnect_interval,
        client_properties=client_properties,
    )


CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    OSError,
    aio_pika.exceptions.AMQPError,
)
"""What a failed connection attempt raises: the broker is down or refusing, retry later."""


async def declare_events_exchange(
    channel: AbstractChannel, name: str = EXCHANGE
) -> AbstractExchange:
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_jobs_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(JOBS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)


async def declare_dead_letter_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )


async def declare_quorum_queue(
    channel: AbstractChannel,
    queue: str,
    *,
    routing_keys: Iterable[str] = (),
    delivery_limit: int = 10,
) -> AbstractQueue:
    """Declare ``queue`` as a durable quorum queue bound to :data:`EXCHANGE`.

    A message returned to it more than ``delivery_limit`` times goes to
    :data:`DEAD_LETTER_EXCHANGE` and from there to the durable quorum queue
    ``<queue>.dlq``. Dead-lettering is at-least-once, so a message is not lost
    between the two queues. Queue arguments cannot change once declared: changing
    ``delivery_limit`` for an existing queue needs a policy or a new queue.
    """
    if delivery_limit < 1:
        raise ValueError("delivery_limit must be at least 1")
    events = await declare_events_exchange(channel)
    dead_letters = await declare_dead_letter_exchange(channel)

    dlq = await channel.declare_queue(
        dead_letter_queue_name(queue),
        durable=True,
        arguments={"x-queue-type": "quorum"},
    )
    await dlq.bind(dead_letters, routing_key=queue)

    declared = await channel.declare_queue(
        queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": queue,
            # at-least-once dead-lettering requires reject-publish overflow.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    for routing_key in routing_keys:
        await declared.bind(events, routing_key=routing_key)
    return declared
