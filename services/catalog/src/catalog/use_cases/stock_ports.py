"""The ports the stock use cases need (reserve, commit, release); adapters
implement them (``catalog.adapters.db.reservations``), tests fake them.

Every call runs in one transaction that the caller owns: the consumer's, which
also holds the inbox row of the event being handled and commits them together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol
from uuid import UUID

from catalog.domain.stock import ProductStock, Reservation, ReservationStatus, StockLine
from emporium_kit.messaging import JSONValue


class StockStore(Protocol):
    async def lock_products(self, product_ids: Sequence[UUID]) -> dict[UUID, ProductStock]:
        """The stock of those products that exist (deleted ones included), each row
        locked until the transaction ends, locked in product id order."""

    async def reserve(self, lines: Sequence[StockLine]) -> None:
        """Add each line's quantity to its product's reserved count, all or none."""

    async def commit(self, lines: Sequence[StockLine]) -> None:
        """Take each line's quantity off its product's stock on hand and reserved count."""

    async def release(self, lines: Sequence[StockLine]) -> None:
        """Take each line's quantity off its product's reserved count."""

    async def reservation_for_update(self, order_id: UUID) -> Reservation | None:
        """The order's reservation, or None if it has none yet; the order is locked
        until the transaction ends either way, so the events of one order are
        applied one after the other, each reading what the previous committed."""

    async def add(self, reservation: Reservation) -> None:
        """Record a new reservation with its lines."""

    async def set_status(self, order_id: UUID, status: ReservationStatus) -> None: ...


class StockEvents(Protocol):
    async def record(self, routing_key: str, payload: Mapping[str, JSONValue]) -> None:
        """Publish the event if and only if the transaction commits (the outbox)."""
