"""Commit a paid order's reservation (``orders.order_paid.v1``): its units are sold."""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from catalog.domain.stock import (
    ReservationNotFound,
    ReservationStatus,
    Transition,
    commit_transition,
)
from catalog.use_cases.reserve_stock import lines_payload
from catalog.use_cases.stock_ports import StockEvents, StockStore

STOCK_COMMITTED = "catalog.stock_committed.v1"


class CommitOutcome(enum.Enum):
    COMMITTED = "committed"
    ALREADY_COMMITTED = "already_committed"


async def commit_stock(
    store: StockStore, events: StockEvents, *, order_id: UUID, now: datetime
) -> CommitOutcome:
    """reserved -> committed: on hand and reserved both go down by each line's
    quantity, and ``catalog.stock_committed.v1`` is announced, in the caller's
    transaction. A second commit changes nothing.

    Raises ``ReservationNotFound`` when the order's placement was never handled,
    and ``CommitRefused`` when the reservation was rejected or released (no
    units are held for that order).
    """
    reservation = await store.reservation_for_update(order_id)
    if reservation is None:
        raise ReservationNotFound(order_id)
    if commit_transition(reservation) is Transition.ALREADY_DONE:
        return CommitOutcome.ALREADY_COMMITTED
    await store.lock_products([line.product_id for line in reservation.lines])
    await store.commit(reservation.lines)
    await store.set_status(order_id, ReservationStatus.COMMITTED)
    await events.record(
        STOCK_COMMITTED,
        {
            "order_id": str(order_id),
            "lines": lines_payload(reservation.lines),
            "committed_at": now.isoformat(),
        },
    )
    return CommitOutcome.COMMITTED
