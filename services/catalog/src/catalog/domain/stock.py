"""Stock reservations: the rules that keep an order's units held, sold or given back.

A reservation holds every line of one order, or none of it (all or none). Its
life is a small state machine::

    (order placed) --> reserved --(order paid)------> committed
                   \\            \\-(order cancelled)-> released
                    \\-> rejected            (order cancelled first) -> released

``reserved`` units are counted in the product's ``reserved`` column and are not
available to anyone else. Committing takes them out of stock on hand (they are
sold); releasing makes them available again. Committed, released and rejected
are final: a committed reservation is never released (its units left stock when
it was paid for; giving them back is a staff stock change), and a released or
rejected one is never committed (its units were never held, or no longer are).

Pure Python: no framework, no database.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

MAX_LINE_QUANTITY = 1_000_000
"""A line's quantity is at most this (products' stock columns are 32-bit integers);
the orders API allows 1-100 per line, so anything near it is a producer's bug."""


class ReservationStatus(enum.StrEnum):
    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"
    REJECTED = "rejected"


class RejectionReason(enum.StrEnum):
    INSUFFICIENT_STOCK = "insufficient_stock"
    UNKNOWN_PRODUCT = "unknown_product"
    PRODUCT_DELETED = "product_deleted"


class StockError(Exception):
    """A stock rule was broken; ``code`` is stable."""

    code = "stock-error"


class InvalidStockLines(StockError, ValueError):
    """The lines of an order cannot be reserved as given (none, or a bad quantity)."""

    code = "invalid-stock-lines"


class ReservationNotFound(StockError, LookupError):
    """No reservation exists for the order (its placement was never handled)."""

    code = "reservation-not-found"

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"no stock reservation exists for order {order_id}")
        self.order_id = order_id


class ReleaseAfterCommitRefused(StockError):
    """A committed reservation cannot be released: its units were sold."""

    code = "release-after-commit-refused"

    def __init__(self, order_id: UUID) -> None:
        super().__init__(
            f"the reservation of order {order_id} was committed (paid); releasing it is "
            "refused: committed units left stock on hand, and returning them is a stock change"
        )
        self.order_id = order_id


class CommitRefused(StockError):
    """Only a held (``reserved``) reservation can be committed."""

    code = "commit-refused"

    def __init__(self, order_id: UUID, status: ReservationStatus) -> None:
        super().__init__(
            f"the reservation of order {order_id} is {status.value}: no units are held "
            "for it, so a payment cannot commit it"
        )
        self.order_id = order_id
        self.status = status


@dataclass(frozen=True, slots=True)
class StockLine:
    """``quantity`` units of one product."""

    product_id: UUID
    quantity: int


@dataclass(frozen=True, slots=True)
class ProductStock:
    """What a reservation needs to know of a product, read under its row lock."""

    product_id: UUID
    on_hand: int
    reserved: int
    deleted: bool

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line that could not be reserved, and why."""

    product_id: UUID
    quantity: int
    reason: RejectionReason
    available: int | None = None
    """With ``insufficient_stock``: the units available when it was refused."""


@dataclass(frozen=True, slots=True)
class Reservation:
    order_id: UUID
    status: ReservationStatus
    lines: tuple[StockLine, ...]
    """What the order asked for, one line per product, by product id (none for a
    cancellation that overtook its placement)."""
    rejected: tuple[RejectedLine, ...] = ()
    """When ``rejected``: the lines refused, with why."""


def reservation_lines(lines: Iterable[StockLine]) -> tuple[StockLine, ...]:
    """The lines to reserve: one per product (repeated products add up), sorted by
    product id, so every transaction locks rows in the same order (no deadlock
    between two orders that share products)."""
    totals: dict[UUID, int] = {}
    for line in lines:
        if not 1 <= line.quantity <= MAX_LINE_QUANTITY:
            raise InvalidStockLines(
                f"quantity of product {line.product_id} must be 1-{MAX_LINE_QUANTITY}, "
                f"not {line.quantity}"
            )
        totals[line.product_id] = totals.get(line.product_id, 0) + line.quantity
    if not totals:
        raise InvalidStockLines("an order has at least one line to reserve")
    if any(total > MAX_LINE_QUANTITY for total in totals.values()):
        raise InvalidStockLines(f"a product's total quantity must be at most {MAX_LINE_QUANTITY}")
    return tuple(StockLine(pid, totals[pid]) for pid in sorted(totals))


def rejected_lines(
    lines: Iterable[StockLine], stock: Mapping[UUID, ProductStock]
) -> tuple[RejectedLine, ...]:
    """The lines that cannot be reserved given ``stock`` (read under lock), with why;
    empty when every line can be. All or none: one rejected line rejects the order."""
    rejected: list[RejectedLine] = []
    for line in lines:
        product = stock.get(line.product_id)
        if product is None:
            rejected.append(
                RejectedLine(line.product_id, line.quantity, RejectionReason.UNKNOWN_PRODUCT)
            )
        elif product.deleted:
            rejected.append(
                RejectedLine(line.product_id, line.quantity, RejectionReason.PRODUCT_DELETED)
            )
        elif product.available < line.quantity:
            rejected.append(
                RejectedLine(
                    line.product_id,
                    line.quantity,
                    RejectionReason.INSUFFICIENT_STOCK,
                    available=max(product.available, 0),
                )
            )
    return tuple(rejected)


class Transition(enum.Enum):
    """What a request does to a reservation."""

    APPLY = "apply"
    """Change the status and the stock."""
    ALREADY_DONE = "already_done"
    """Nothing to do: the reservation is already where the request would take it."""


def commit_transition(reservation: Reservation) -> Transition:
    """reserved -> committed; a second commit does nothing; released or rejected refused."""
    if reservation.status is ReservationStatus.RESERVED:
        return Transition.APPLY
    if reservation.status is ReservationStatus.COMMITTED:
        return Transition.ALREADY_DONE
    raise CommitRefused(reservation.order_id, reservation.status)


def release_transition(reservation: Reservation) -> Transition:
    """reserved -> released; released or rejected (nothing held) does nothing;
    committed refused."""
    if reservation.status is ReservationStatus.RESERVED:
        return Transition.APPLY
    if reservation.status is ReservationStatus.COMMITTED:
        raise ReleaseAfterCommitRefused(reservation.order_id)
    return Transition.ALREADY_DONE
