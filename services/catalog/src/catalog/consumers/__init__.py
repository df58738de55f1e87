"""The catalogue's consumer process (``python -m catalog.consumers``): the order
events that reserve, commit and release stock.

It runs the kit's idempotent :class:`~emporium_kit.messaging.consumer.EventConsumer`
on the quorum queue ``CATALOG_ORDERS_QUEUE`` (``catalog.orders``), bound to the
three order events, with the handler of
:mod:`catalog.entrypoints.consumers.order_events`. The stock events it writes go
to the catalogue's outbox; this process runs an outbox relay of its own
(``CATALOG_CONSUMERS_RUN_OUTBOX_RELAY``, on by default) beside the API
process's, so stock answers are published even while the API is down (relays
share the outbox with ``SKIP LOCKED``, never publishing a row twice).

Any number of these processes may run: the queue hands each message to one of
them, and the inbox makes a redelivered one change nothing. With RabbitMQ down
at start-up it keeps trying to connect (with backoff) instead of exiting;
SIGTERM or Ctrl-C stops consuming, lets the events in hand finish (cut short,
they roll back and are delivered again) and lets the relay finish its pass.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

import structlog
from prometheus_client import start_http_server
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_random_exponential

from catalog.adapters.db.reservations import OutboxStockEvents, SqlStockStore
from catalog.adapters.db.tables import inbox, outbox
from catalog.entrypoints.consumers.order_events import (
    CONSUMER_NAME,
    ROUTING_KEYS,
    order_events_handler,
)
from catalog.settings import CatalogSettings
from emporium_kit.database import create_engine, create_session_factory
from emporium_kit.messaging.consumer import EventConsumer
from emporium_kit.messaging.relay import OutboxRelay

log = structlog.get_logger(__name__)

SERVICE = "catalog"
PROCESS = "catalog-consumers"


def build_order_events_consumer(settings: CatalogSettings, engine: AsyncEngine) -> EventConsumer:
    """The consumer of the order events, over the catalogue's database ``engine``."""
    return EventConsumer(
        settings.amqp_url,
        queue=settings.orders_queue,
        routing_keys=ROUTING_KEYS,
        handler=order_events_handler(SqlStockStore, OutboxStockEvents),
        session_factory=create_session_factory(engine),
        inbox=inbox,
        consumer_name=CONSUMER_NAME,
        prefetch=settings.consumer_prefetch,
        delivery_limit=settings.consumer_delivery_limit,
        max_attempts=settings.consumer_max_attempts,
        retry_base_delay=settings.consumer_retry_base_seconds,
        retry_max_delay=settings.consumer_retry_max_seconds,
        service=SERVICE,
        dead_letters_queue=settings.dead_letters_queue,
    )


async def run_consumers(settings: CatalogSettings, stopping: asyncio.Event) -> None:
    """Consume (and relay the outbox, when configured) until ``stopping`` is set."""
    engine = create_engine(settings.database, application_name=PROCESS)
    consumer = build_order_events_consumer(settings, engine)
    # Old published rows are pruned by the catalogue's scheduler (and the API's relay).
    relay = OutboxRelay(
        engine, outbox, settings.amqp_url, name="catalog-consumers-outbox", purge_interval=None
    )
    tasks: list[asyncio.Task[None]] = [
        asyncio.create_task(
            _start(consumer, metrics_port=settings.consumers_metrics_port, host=settings.host),
            name="order-events-consumer",
        )
    ]
    if settings.consumers_run_outbox_relay:
        tasks.append(asyncio.create_task(relay.run(), name="outbox-relay"))
    try:
        await stopping.wait()
    finally:
        log.info("catalog_consumers_stopping")
        tasks[0].cancel()  # still connecting: stop trying
        with suppress(asyncio.CancelledError):
            await tasks[0]  # its own failures are logged where they happen
        await consumer.stop()
        await relay.stop()
        for task in tasks[1:]:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        await engine.dispose()
        log.info("catalog_consumers_stopped")


async def _start(consumer: EventConsumer, *, metrics_port: int, host: str) -> None:
    """Start ``consumer``, retrying while the broker is not reachable; then serve
    ``/metrics`` (so a supervisor that waits for it knows the process consumes)."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_random_exponential(multiplier=0.5, max=10),
        stop=stop_never,
        before_sleep=lambda state: log.warning(
            "order_events_consumer_start_deferred",
            attempt=state.attempt_number,
            error=repr(state.outcome.exception()) if state.outcome else None,
        ),
    ):
        with attempt:
            await consumer.start()
    if metrics_port:
        try:
            start_http_server(metrics_port, addr=host)
        except OSError as exc:  # the port is taken: consume anyway, say so
            log.error("catalog_consumers_metrics_unavailable", port=metrics_port, error=repr(exc))
            return
        log.info("catalog_consumers_metrics_served", port=metrics_port)
