"""Stock reservations in PostgreSQL: their tables, the stock statements, and the
stock events written to the outbox.

Concurrency (never oversell, never deadlock):

* Every statement that changes stock first locks the order's product rows with
  one ``SELECT ... ORDER BY id FOR UPDATE``. Two orders that share products
  lock them in the same order, so they queue behind each other instead of
  deadlocking, and the later one reads what the earlier one committed.
* The change itself is one ``UPDATE products ... FROM (VALUES ...)`` over every
  line, still guarded (``on_hand - reserved >= qty`` for a reservation,
  ``reserved >= qty`` for a commit or a release) and its row count checked
  against the line count. Under the lock the guard always holds; it is there
  so that a bug elsewhere fails loudly (and rolls back) instead of overselling,
  as the table's ``CHECK (reserved <= on_hand)`` would.
* Each event first takes a transaction-scoped advisory lock on its order
  (``pg_advisory_xact_lock``), even before the order has a reservation row: the
  events of one order (a placement and a cancellation racing, a payment and a
  cancellation racing) are applied one after the other, and each reads what the
  previous one committed. Without it, two events of an order that has no row yet
  both see none and meet on the primary key, and one is retried. It is always
  taken before any product row, so it adds no deadlock.

``products.updated_at`` is not touched: it says when the product's catalogue
data was last edited; stock moves many times a minute and is announced by the
``catalog.stock_*`` events instead (which also clear the gateway's cache).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.adapters.db.tables import TIMESTAMP, metadata, outbox, products
from catalog.domain.stock import (
    ProductStock,
    RejectedLine,
    RejectionReason,
    Reservation,
    ReservationStatus,
    StockLine,
)
from emporium_kit.messaging import JSONValue
from emporium_kit.messaging.outbox import add_event

# One row per order whose placement the catalogue handled (or whose cancellation
# overtook it): the order's reservation and where it stands.
stock_reservations = sa.Table(
    "stock_reservations",
    metadata,
    sa.Column("order_id", PG_UUID(as_uuid=True), primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(
        "status IN ('reserved', 'committed', 'released', 'rejected')", name="status"
    ),
)

# The lines of a reservation: what the order asked for, one row per product. A
# rejected reservation keeps its lines too, each refused one with its reason
# (no foreign key to products: an unknown product is a reason to refuse).
stock_reservation_lines = sa.Table(
    "stock_reservation_lines",
    metadata,
    sa.Column(
        "order_id",
        PG_UUID(as_uuid=True),
        sa.ForeignKey("stock_reservations.order_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("product_id", PG_UUID(as_uuid=True), primary_key=True),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("rejection_reason", sa.Text, nullable=True),
    sa.Column("available", sa.Integer, nullable=True),
    sa.CheckConstraint("quantity > 0", name="quantity_positive"),
)
# Which orders hold a product (staff questions; a product's open reservations).
sa.Index("ix_stock_reservation_lines_product_id", stock_reservation_lines.c.product_id)


ORDER_LOCK_NAMESPACE = 0x5E0C
"""The first key of the order locks (``pg_advisory_xact_lock(int, int)``), so they
share no key with any other advisory lock of the database."""


def order_lock_key(order_id: UUID) -> int:
    """The second key of an order's lock: 32 bits of its id, signed (two orders that
    share it only wait for each other, which is harmless)."""
    return int.from_bytes(order_id.bytes[:4], "big", signed=True)


class StockLedgerMismatch(RuntimeError):
    """A guarded stock statement changed fewer rows than it had lines, under lock:
    the stock columns and the reservations disagree. Rolled back, never applied."""


def _values(lines: Sequence[StockLine]) -> sa.Values:
    return sa.values(
        sa.column("id", PG_UUID(as_uuid=True)),
        sa.column("qty", sa.Integer),
        name="lines",
    ).data([(line.product_id, line.quantity) for line in lines])


class SqlStockStore:
    """The stock and reservation statements, in the caller's transaction (``session``)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_products(self, product_ids: Sequence[UUID]) -> dict[UUID, ProductStock]:
        rows = await self._session.execute(
            sa.select(products.c.id, products.c.on_hand, products.c.reserved, products.c.deleted_at)
            .where(products.c.id.in_(sorted(set(product_ids))))
            .order_by(products.c.id)
            .with_for_update()
        )
        return {
            row.id: ProductStock(
                product_id=row.id,
                on_hand=row.on_hand,
                reserved=row.reserved,
                deleted=row.deleted_at is not None,
            )
            for row in rows
        }

    async def reserve(self, lines: Sequence[StockLine]) -> None:
        wanted = _values(lines)
        result = await self._session.execute(
            sa.update(products)
            .values(reserved=products.c.reserved + wanted.c.qty)
            .where(
                products.c.id == wanted.c.id,
                products.c.deleted_at.is_(None),
                products.c.on_hand - products.c.reserved >= wanted.c.qty,
            )
        )
        self._check(result, lines, "reserve")

    async def commit(self, lines: Sequence[StockLine]) -> None:
        held = _values(lines)
        result = await self._session.execute(
            sa.update(products)
            .values(
                on_hand=products.c.on_hand - held.c.qty,
                reserved=products.c.reserved - held.c.qty,
            )
            .where(products.c.id == held.c.id, products.c.reserved >= held.c.qty)
        )
        self._check(result, lines, "commit")

    async def release(self, lines: Sequence[StockLine]) -> None:
        held = _values(lines)
        result = await self._session.execute(
            sa.update(products)
            .values(reserved=products.c.reserved - held.c.qty)
            .where(products.c.id == held.c.id, products.c.reserved >= held.c.qty)
        )
        self._check(result, lines, "release")

    @staticmethod
    def _check(result: Any, lines: Sequence[StockLine], action: str) -> None:
        if result.rowcount != len(lines):
            raise StockLedgerMismatch(
                f"{action} changed {result.rowcount} of {len(lines)} products under lock"
            )

    async def reservation_for_update(self, order_id: UUID) -> Reservation | None:
        # Its own statement: the read below must start after the lock is granted, to
        # see what the order's previous event committed.
        await self._session.execute(
            sa.select(sa.func.pg_advisory_xact_lock(ORDER_LOCK_NAMESPACE, order_lock_key(order_id)))
        )
        status = await self._session.scalar(
            sa.select(stock_reservations.c.status)
            .where(stock_reservations.c.order_id == order_id)
            .with_for_update()
        )
        if status is None:
            return None
        rows = await self._session.execute(
            sa.select(stock_reservation_lines)
            .where(stock_reservation_lines.c.order_id == order_id)
            .order_by(stock_reservation_lines.c.product_id)
        )
        lines: list[StockLine] = []
        rejected: list[RejectedLine] = []
        for row in rows:
            lines.append(StockLine(row.product_id, row.quantity))
            if row.rejection_reason is not None:
                rejected.append(
                    RejectedLine(
                        row.product_id,
                        row.quantity,
                        RejectionReason(row.rejection_reason),
                        available=row.available,
                    )
                )
        return Reservation(
            order_id=order_id,
            status=ReservationStatus(status),
            lines=tuple(lines),
            rejected=tuple(rejected),
        )

    async def add(self, reservation: Reservation) -> None:
        """Insert the reservation and its lines (the order is locked: no other event
        of it can be inserting one)."""
        await self._session.execute(
            sa.insert(stock_reservations).values(
                order_id=reservation.order_id, status=reservation.status.value
            )
        )
        if not reservation.lines:
            return
        refused: Mapping[UUID, RejectedLine] = {r.product_id: r for r in reservation.rejected}
        await self._session.execute(
            sa.insert(stock_reservation_lines),
            [
                {
                    "order_id": reservation.order_id,
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "rejection_reason": refusal.reason.value if refusal else None,
                    "available": refusal.available if refusal else None,
                }
                for line in reservation.lines
                for refusal in [refused.get(line.product_id)]
            ],
        )

    async def set_status(self, order_id: UUID, status: ReservationStatus) -> None:
        await self._session.execute(
            sa.update(stock_reservations)
            .where(stock_reservations.c.order_id == order_id)
            .values(status=status.value, updated_at=sa.func.now())
        )


class OutboxStockEvents:
    """Stock events into the catalogue's outbox, in the caller's transaction: they
    are published (by any relay of the service) if and only if it commits."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, routing_key: str, payload: Mapping[str, JSONValue]) -> None:
        await add_event(self._session, outbox, routing_key, payload)
