"""The stock reservation rules and use cases, on a fake store that behaves like
the database (all or none, the CHECK on the stock columns, one reservation per order)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from catalog.domain.stock import (
    CommitRefused,
    InvalidStockLines,
    ProductStock,
    RejectedLine,
    RejectionReason,
    ReleaseAfterCommitRefused,
    Reservation,
    ReservationNotFound,
    ReservationStatus,
    StockLine,
    Transition,
    commit_transition,
    rejected_lines,
    release_transition,
    reservation_lines,
)
from catalog.use_cases.commit_stock import STOCK_COMMITTED, CommitOutcome, commit_stock
from catalog.use_cases.release_stock import STOCK_RELEASED, ReleaseOutcome, release_stock
from catalog.use_cases.reserve_stock import (
    STOCK_REJECTED,
    STOCK_RESERVED,
    ReserveOutcome,
    reserve_stock,
)
from emporium_kit.messaging import JSONValue

NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


@dataclass
class FakeProduct:
    on_hand: int
    reserved: int = 0
    deleted: bool = False


@dataclass
class FakeStockStore:
    products: dict[UUID, FakeProduct] = field(default_factory=dict)
    reservations: dict[UUID, Reservation] = field(default_factory=dict)
    locked: list[list[UUID]] = field(default_factory=list)

    async def lock_products(self, product_ids: Sequence[UUID]) -> dict[UUID, ProductStock]:
        ids = sorted(set(product_ids))
        self.locked.append(ids)
        return {
            pid: ProductStock(pid, p.on_hand, p.reserved, p.deleted)
            for pid in ids
            if (p := self.products.get(pid)) is not None
        }

    def _apply(self, lines: Sequence[StockLine], on_hand: int, reserved: int) -> None:
        after = {}
        for line in lines:
            product = self.products[line.product_id]
            new = FakeProduct(
                product.on_hand + on_hand * line.quantity,
                product.reserved + reserved * line.quantity,
                product.deleted,
            )
            assert 0 <= new.reserved <= new.on_hand, "CHECK (reserved <= on_hand) violated"
            after[line.product_id] = new
        self.products.update(after)

    async def reserve(self, lines: Sequence[StockLine]) -> None:
        self._apply(lines, 0, +1)

    async def commit(self, lines: Sequence[StockLine]) -> None:
        self._apply(lines, -1, -1)

    async def release(self, lines: Sequence[StockLine]) -> None:
        self._apply(lines, 0, -1)

    async def reservation_for_update(self, order_id: UUID) -> Reservation | None:
        return self.reservations.get(order_id)

    async def add(self, reservation: Reservation) -> None:
        assert reservation.order_id not in self.reservations, "primary key violated"
        self.reservations[reservation.order_id] = reservation

    async def set_status(self, order_id: UUID, status: ReservationStatus) -> None:
        self.reservations[order_id] = replace(self.reservations[order_id], status=status)


@dataclass
class FakeEvents:
    recorded: list[tuple[str, Mapping[str, JSONValue]]] = field(default_factory=list)

    async def record(self, routing_key: str, payload: Mapping[str, JSONValue]) -> None:
        self.recorded.append((routing_key, payload))


def _ids(n: int) -> list[UUID]:
    return sorted(uuid4() for _ in range(n))


# -- domain rules ---------------------------------------------------------------------


def test_reservation_lines_add_up_repeated_products_and_sort_by_id() -> None:
    a, b = _ids(2)
    assert reservation_lines([StockLine(b, 1), StockLine(a, 2), StockLine(b, 3)]) == (
        StockLine(a, 2),
        StockLine(b, 4),
    )


@pytest.mark.parametrize("quantity", [0, -1, 1_000_001])
def test_a_line_quantity_out_of_range_is_refused(quantity: int) -> None:
    with pytest.raises(InvalidStockLines):
        reservation_lines([StockLine(uuid4(), quantity)])


def test_an_order_without_lines_is_refused() -> None:
    with pytest.raises(InvalidStockLines):
        reservation_lines([])


def test_each_refused_line_has_its_reason() -> None:
    ok, short, deleted, unknown = _ids(4)
    stock = {
        ok: ProductStock(ok, on_hand=5, reserved=0, deleted=False),
        short: ProductStock(short, on_hand=5, reserved=4, deleted=False),
        deleted: ProductStock(deleted, on_hand=9, reserved=0, deleted=True),
    }
    lines = [StockLine(ok, 5), StockLine(short, 2), StockLine(deleted, 1), StockLine(unknown, 1)]
    assert rejected_lines(lines, stock) == (
        RejectedLine(short, 2, RejectionReason.INSUFFICIENT_STOCK, available=1),
        RejectedLine(deleted, 1, RejectionReason.PRODUCT_DELETED),
        RejectedLine(unknown, 1, RejectionReason.UNKNOWN_PRODUCT),
    )
    assert rejected_lines([StockLine(ok, 5)], stock) == ()


def _reservation(status: ReservationStatus) -> Reservation:
    return Reservation(uuid4(), status, (StockLine(uuid4(), 1),))


def test_only_a_held_reservation_is_committed() -> None:
    assert commit_transition(_reservation(ReservationStatus.RESERVED)) is Transition.APPLY
    assert commit_transition(_reservation(ReservationStatus.COMMITTED)) is Transition.ALREADY_DONE
    for status in (ReservationStatus.RELEASED, ReservationStatus.REJECTED):
        with pytest.raises(CommitRefused):
            commit_transition(_reservation(status))


def test_release_after_commit_is_refused() -> None:
    assert release_transition(_reservation(ReservationStatus.RESERVED)) is Transition.APPLY
    for status in (ReservationStatus.RELEASED, ReservationStatus.REJECTED):
        assert release_transition(_reservation(status)) is Transition.ALREADY_DONE
    with pytest.raises(ReleaseAfterCommitRefused):
        release_transition(_reservation(ReservationStatus.COMMITTED))


# -- use cases --------------------------------------------------------------------------


async def test_reserving_every_line_holds_them_and_announces_it() -> None:
    a, b = _ids(2)
    store = FakeStockStore({a: FakeProduct(3), b: FakeProduct(1)})
    events = FakeEvents()
    order = uuid4()
    result = await reserve_stock(
        store, events, order_id=order, lines=[StockLine(b, 1), StockLine(a, 2)], now=NOW
    )
    assert result.outcome is ReserveOutcome.RESERVED
    assert store.products[a] == FakeProduct(3, 2)
    assert store.products[b] == FakeProduct(1, 1)
    assert store.locked == [[a, b]]
    assert store.reservations[order].status is ReservationStatus.RESERVED
    assert events.recorded == [
        (
            STOCK_RESERVED,
            {
                "order_id": str(order),
                "lines": [
                    {"product_id": str(a), "quantity": 2},
                    {"product_id": str(b), "quantity": 1},
                ],
                "reserved_at": NOW.isoformat(),
            },
        )
    ]


async def test_one_short_line_rejects_the_whole_order_and_changes_no_stock() -> None:
    a, b = _ids(2)
    store = FakeStockStore({a: FakeProduct(3), b: FakeProduct(1)})
    events = FakeEvents()
    order = uuid4()
    result = await reserve_stock(
        store, events, order_id=order, lines=[StockLine(a, 2), StockLine(b, 2)], now=NOW
    )
    assert result.outcome is ReserveOutcome.REJECTED
    assert store.products == {a: FakeProduct(3), b: FakeProduct(1)}
    assert store.reservations[order].status is ReservationStatus.REJECTED
    assert events.recorded == [
        (
            STOCK_REJECTED,
            {
                "order_id": str(order),
                "lines": [
                    {
                        "product_id": str(b),
                        "quantity": 2,
                        "reason": "insufficient_stock",
                        "requested": 2,
                        "available": 1,
                    }
                ],
                "rejected_at": NOW.isoformat(),
            },
        )
    ]


async def test_a_second_placement_of_an_order_changes_nothing_and_answers_again() -> None:
    (a,) = _ids(1)
    store = FakeStockStore({a: FakeProduct(3)})
    events = FakeEvents()
    order = uuid4()
    await reserve_stock(store, events, order_id=order, lines=[StockLine(a, 1)], now=NOW)
    again = await reserve_stock(store, events, order_id=order, lines=[StockLine(a, 1)], now=NOW)
    assert again.outcome is ReserveOutcome.ANSWERED_AGAIN
    assert store.products[a] == FakeProduct(3, 1)
    assert [key for key, _ in events.recorded] == [STOCK_RESERVED, STOCK_RESERVED]
    assert events.recorded[0] == events.recorded[1]


async def test_commit_sells_the_held_units_once() -> None:
    (a,) = _ids(1)
    store = FakeStockStore({a: FakeProduct(5)})
    events = FakeEvents()
    order = uuid4()
    await reserve_stock(store, events, order_id=order, lines=[StockLine(a, 2)], now=NOW)
    assert await commit_stock(store, events, order_id=order, now=NOW) is CommitOutcome.COMMITTED
    assert store.products[a] == FakeProduct(3, 0)
    again = await commit_stock(store, events, order_id=order, now=NOW)
    assert again is CommitOutcome.ALREADY_COMMITTED
    assert store.products[a] == FakeProduct(3, 0)
    assert [key for key, _ in events.recorded] == [STOCK_RESERVED, STOCK_COMMITTED]


async def test_commit_of_an_unknown_reservation_is_refused() -> None:
    with pytest.raises(ReservationNotFound):
        await commit_stock(FakeStockStore(), FakeEvents(), order_id=uuid4(), now=NOW)


async def test_commit_of_a_rejected_reservation_is_refused() -> None:
    (a,) = _ids(1)
    store = FakeStockStore({a: FakeProduct(0)})
    order = uuid4()
    await reserve_stock(store, FakeEvents(), order_id=order, lines=[StockLine(a, 1)], now=NOW)
    with pytest.raises(CommitRefused):
        await commit_stock(store, FakeEvents(), order_id=order, now=NOW)
    assert store.products[a] == FakeProduct(0)


async def test_release_gives_the_units_back_once_and_never_after_commit() -> None:
    (a,) = _ids(1)
    store = FakeStockStore({a: FakeProduct(5)})
    events = FakeEvents()
    released, paid = uuid4(), uuid4()
    await reserve_stock(store, events, order_id=released, lines=[StockLine(a, 2)], now=NOW)
    await reserve_stock(store, events, order_id=paid, lines=[StockLine(a, 1)], now=NOW)
    assert await release_stock(store, events, order_id=released, now=NOW) is (
        ReleaseOutcome.RELEASED
    )
    assert store.products[a] == FakeProduct(5, 1)
    assert await release_stock(store, events, order_id=released, now=NOW) is (
        ReleaseOutcome.NOTHING_HELD
    )
    await commit_stock(store, events, order_id=paid, now=NOW)
    with pytest.raises(ReleaseAfterCommitRefused):
        await release_stock(store, events, order_id=paid, now=NOW)
    assert store.products[a] == FakeProduct(4, 0)
    assert [key for key, _ in events.recorded].count(STOCK_RELEASED) == 1


async def test_a_cancellation_that_overtakes_its_placement_leaves_nothing_reserved() -> None:
    (a,) = _ids(1)
    store = FakeStockStore({a: FakeProduct(5)})
    events = FakeEvents()
    order = uuid4()
    assert await release_stock(store, events, order_id=order, now=NOW) is (
        ReleaseOutcome.RELEASED_BEFORE_PLACED
    )
    late = await reserve_stock(store, events, order_id=order, lines=[StockLine(a, 2)], now=NOW)
    assert late.outcome is ReserveOutcome.CANCELLED_BEFORE_PLACED
    assert store.products[a] == FakeProduct(5, 0)
    assert events.recorded == []
