"""Release a cancelled order's reservation (``orders.order_cancelled.v1``)."""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from catalog.domain.stock import (
    Reservation,
    ReservationStatus,
    Transition,
    release_transition,
)
from catalog.use_cases.reserve_stock import lines_payload
from catalog.use_cases.stock_ports import StockEvents, StockStore

STOCK_RELEASED = "catalog.stock_released.v1"


class ReleaseOutcome(enum.Enum):
    RELEASED = "released"
    NOTHING_HELD = "nothing_held"
    """Released already, or rejected (nothing was ever held)."""
    RELEASED_BEFORE_PLACED = "released_before_placed"
    """No reservation yet: the cancellation overtook the placement. A released
    reservation without lines is recorded, so the late placement reserves nothing."""


async def release_stock(
    store: StockStore, events: StockEvents, *, order_id: UUID, now: datetime
) -> ReleaseOutcome:
    """reserved -> released: each line's quantity leaves the reserved count, so as
    many units are available again, and ``catalog.stock_released.v1`` is
    announced, in the caller's transaction. Releasing again changes nothing.

    Raises ``ReleaseAfterCommitRefused`` when the reservation was committed: the
    order was paid and its units left stock then; nothing changes.
    """
    reservation = await store.reservation_for_update(order_id)
    if reservation is None:
        await store.add(Reservation(order_id, ReservationStatus.RELEASED, ()))
        return ReleaseOutcome.RELEASED_BEFORE_PLACED
    if release_transition(reservation) is Transition.ALREADY_DONE:
        return ReleaseOutcome.NOTHING_HELD
    await store.lock_products([line.product_id for line in reservation.lines])
    await store.release(reservation.lines)
    await store.set_status(order_id, ReservationStatus.RELEASED)
    await events.record(
        STOCK_RELEASED,
        {
            "order_id": str(order_id),
            "lines": lines_payload(reservation.lines),
            "released_at": now.isoformat(),
        },
    )
    return ReleaseOutcome.RELEASED
