"""Reserve every line of a placed order, or none of them (``orders.order_placed.v1``)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from catalog.domain.stock import (
    RejectedLine,
    Reservation,
    ReservationStatus,
    StockLine,
    rejected_lines,
    reservation_lines,
)
from catalog.use_cases.stock_ports import StockEvents, StockStore
from emporium_kit.messaging import JSONValue

STOCK_RESERVED = "catalog.stock_reserved.v1"
STOCK_REJECTED = "catalog.stock_rejected.v1"


class ReserveOutcome(enum.Enum):
    RESERVED = "reserved"
    REJECTED = "rejected"
    ANSWERED_AGAIN = "answered_again"
    """The order was placed before (another message for the same order): nothing
    changes and the first answer is published again."""
    CANCELLED_BEFORE_PLACED = "cancelled_before_placed"
    """The order's reservation is released: its cancellation was handled before this
    placement (or before this repeat of it). Nothing is reserved or published."""


@dataclass(frozen=True, slots=True)
class ReserveResult:
    outcome: ReserveOutcome
    lines: tuple[StockLine, ...]
    rejected: tuple[RejectedLine, ...] = ()


def lines_payload(lines: Iterable[StockLine]) -> list[JSONValue]:
    return [{"product_id": str(line.product_id), "quantity": line.quantity} for line in lines]


def _rejected_payload(rejected: Iterable[RejectedLine]) -> list[JSONValue]:
    payload: list[JSONValue] = []
    for line in rejected:
        item: dict[str, JSONValue] = {
            "product_id": str(line.product_id),
            "quantity": line.quantity,
            "reason": line.reason.value,
        }
        if line.available is not None:
            item["requested"] = line.quantity
            item["available"] = line.available
        payload.append(item)
    return payload


async def reserve_stock(
    store: StockStore,
    events: StockEvents,
    *,
    order_id: UUID,
    lines: Sequence[StockLine],
    now: datetime,
) -> ReserveResult:
    """Reserve the order's lines all at once or not at all, record the reservation,
    and announce the outcome (``catalog.stock_reserved.v1`` or
    ``catalog.stock_rejected.v1``), all in the caller's transaction.

    The products are locked in id order before anything is decided, so concurrent
    orders for the same units are decided one after the other on committed
    stock: never more is reserved than is on hand.
    """
    wanted = reservation_lines(lines)
    existing = await store.reservation_for_update(order_id)
    if existing is not None:
        return await _answer_again(events, existing, at=now)

    stock = await store.lock_products([line.product_id for line in wanted])
    refused = rejected_lines(wanted, stock)
    if refused:
        await store.add(Reservation(order_id, ReservationStatus.REJECTED, wanted, refused))
        await _announce_rejected(events, order_id, refused, at=now)
        return ReserveResult(ReserveOutcome.REJECTED, wanted, refused)

    await store.reserve(wanted)
    await store.add(Reservation(order_id, ReservationStatus.RESERVED, wanted))
    await _announce_reserved(events, order_id, wanted, at=now)
    return ReserveResult(ReserveOutcome.RESERVED, wanted)


async def _answer_again(
    events: StockEvents, existing: Reservation, *, at: datetime
) -> ReserveResult:
    if existing.status is ReservationStatus.RELEASED:
        return ReserveResult(ReserveOutcome.CANCELLED_BEFORE_PLACED, existing.lines)
    if existing.status is ReservationStatus.REJECTED:
        await _announce_rejected(events, existing.order_id, existing.rejected, at=at)
    else:  # reserved or committed: it was reserved
        await _announce_reserved(events, existing.order_id, existing.lines, at=at)
    return ReserveResult(ReserveOutcome.ANSWERED_AGAIN, existing.lines, existing.rejected)


async def _announce_reserved(
    events: StockEvents, order_id: UUID, lines: Iterable[StockLine], *, at: datetime
) -> None:
    await events.record(
        STOCK_RESERVED,
        {"order_id": str(order_id), "lines": lines_payload(lines), "reserved_at": at.isoformat()},
    )


async def _announce_rejected(
    events: StockEvents, order_id: UUID, rejected: Iterable[RejectedLine], *, at: datetime
) -> None:
    await events.record(
        STOCK_REJECTED,
        {
            "order_id": str(order_id),
            "lines": _rejected_payload(rejected),
            "rejected_at": at.isoformat(),
        },
    )
