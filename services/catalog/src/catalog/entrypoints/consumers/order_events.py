"""The order events that move stock, handled in the kit's idempotent consumer.

The consumer (``emporium_kit.messaging.consumer.EventConsumer``, started by
``python -m catalog.consumers``) records each message id in the inbox and runs
:func:`order_events_handler`'s handler in the same transaction, so a duplicate
delivery changes nothing. The handler validates the payload with its own models
(unknown fields ignored) and runs one use case; the stock change, the
reservation and the stock event in the outbox commit with the inbox row.

What each event does, and what is refused:

* ``orders.order_placed.v1``: reserve every line or none; publish
  ``catalog.stock_reserved.v1`` or ``catalog.stock_rejected.v1`` (a reason per
  refused line). A second placement of the same order (another message id)
  changes nothing and publishes the first answer again.
* ``orders.order_paid.v1``: commit the reservation once (on hand and reserved go
  down); ``catalog.stock_committed.v1``. A payment for an order whose placement
  was never handled is dead-lettered at once (``ReservationNotFound``): it
  shows in the ops list and, replayed once the placement is handled, commits.
  A payment for a rejected or released reservation is dead-lettered too
  (``CommitRefused``): the order was charged but holds no stock, which needs a
  person (a refund, or a stock change) and never a silent commit.
* ``orders.order_cancelled.v1``: release the reservation if it is still held;
  ``catalog.stock_released.v1``. Release after commit is refused: nothing
  changes and the event is acknowledged (logged ``stock_release_refused``, a
  warning), because it is the normal end of a paid order cancelled and refunded
  (its units left stock when it was paid; restocking is a staff stock change),
  and a dead letter would only ask an operator to replay something that must
  not happen. A cancellation that overtakes its placement records a released
  reservation with no lines, so the late placement reserves nothing.

Malformed payloads (``ValidationError``) and event types this queue should not
receive are dead-lettered at once; errors that can pass (the database is
down, a lock or statement timeout) are retried with backoff by the consumer.
Events of one order never race each other: each takes the order's lock first
(``catalog.adapters.db.reservations``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import structlog
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.domain.stock import (
    MAX_LINE_QUANTITY,
    CommitRefused,
    ReleaseAfterCommitRefused,
    StockLine,
)
from catalog.use_cases.commit_stock import commit_stock
from catalog.use_cases.release_stock import release_stock
from catalog.use_cases.reserve_stock import reserve_stock
from catalog.use_cases.stock_ports import StockEvents, StockStore
from emporium_kit.messaging import EventEnvelope
from emporium_kit.messaging.consumer import EventHandler
from emporium_kit.retrying import PermanentError

log = structlog.get_logger(__name__)

ORDER_PLACED = "orders.order_placed.v1"
ORDER_PAID = "orders.order_paid.v1"
ORDER_CANCELLED = "orders.order_cancelled.v1"
ROUTING_KEYS = (ORDER_PLACED, ORDER_PAID, ORDER_CANCELLED)

CONSUMER_NAME = "catalog-order-events"
"""The consumer's name in the inbox: one inbox row per (this name, message id)."""

STOCK_OUTCOMES = Counter(
    "catalog_stock_event_outcomes_total",
    "Order events handled by the stock consumer, by event and what came of them "
    "(counted when handled; a rolled-back attempt may be counted again on its retry)",
    ["event", "outcome"],
)


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class OrderLine(_Event):
    product_id: UUID
    quantity: Annotated[int, Field(ge=1, le=MAX_LINE_QUANTITY, strict=True)]


class OrderPlaced(_Event):
    order_id: UUID
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=1000)]


class OrderPaid(_Event):
    order_id: UUID


class OrderCancelled(_Event):
    order_id: UUID
    reason: str | None = None


StoreFactory = Callable[[AsyncSession], StockStore]
EventsFactory = Callable[[AsyncSession], StockEvents]


def order_events_handler(
    stores: StoreFactory,
    events: EventsFactory,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> EventHandler:
    """The handler of the order-events queue, over the adapters the composition
    root gives it (each made on the consumer's session)."""

    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        store, outbox = stores(session), events(session)
        if envelope.type == ORDER_PLACED:
            await _placed(store, outbox, OrderPlaced.model_validate(envelope.payload), clock())
        elif envelope.type == ORDER_PAID:
            await _paid(store, outbox, OrderPaid.model_validate(envelope.payload), clock())
        elif envelope.type == ORDER_CANCELLED:
            await _cancelled(
                store, outbox, OrderCancelled.model_validate(envelope.payload), clock()
            )
        else:
            raise PermanentError(f"the order-events queue does not handle {envelope.type!r}")

    return handle


async def _placed(
    store: StockStore, events: StockEvents, event: OrderPlaced, now: datetime
) -> None:
    result = await reserve_stock(
        store,
        events,
        order_id=event.order_id,
        lines=[StockLine(line.product_id, line.quantity) for line in event.lines],
        now=now,
    )
    STOCK_OUTCOMES.labels(event="order_placed", outcome=result.outcome.value).inc()
    log.info(
        "stock_reservation_decided",
        order_id=str(event.order_id),
        outcome=result.outcome.value,
        lines=len(result.lines),
        rejected=[
            {"product_id": str(line.product_id), "reason": line.reason.value}
            for line in result.rejected
        ],
    )


async def _paid(store: StockStore, events: StockEvents, event: OrderPaid, now: datetime) -> None:
    try:
        outcome = await commit_stock(store, events, order_id=event.order_id, now=now)
    except CommitRefused as exc:
        STOCK_OUTCOMES.labels(event="order_paid", outcome="refused").inc()
        log.error(
            "stock_commit_refused",
            order_id=str(event.order_id),
            status=exc.status.value,
            code=exc.code,
        )
        raise PermanentError(str(exc)) from exc
    STOCK_OUTCOMES.labels(event="order_paid", outcome=outcome.value).inc()
    log.info("stock_commit_handled", order_id=str(event.order_id), outcome=outcome.value)


async def _cancelled(
    store: StockStore, events: StockEvents, event: OrderCancelled, now: datetime
) -> None:
    try:
        outcome = await release_stock(store, events, order_id=event.order_id, now=now)
    except ReleaseAfterCommitRefused as exc:
        # Acknowledged, nothing changed: see the module's docstring.
        STOCK_OUTCOMES.labels(event="order_cancelled", outcome="release_refused").inc()
        log.warning(
            "stock_release_refused",
            order_id=str(event.order_id),
            reason=event.reason,
            code=exc.code,
        )
        return
    STOCK_OUTCOMES.labels(event="order_cancelled", outcome=outcome.value).inc()
    log.info(
        "stock_release_handled",
        order_id=str(event.order_id),
        reason=event.reason,
        outcome=outcome.value,
    )
