"""The order-events consumer against real PostgreSQL and RabbitMQ: stock is
reserved all or none, never oversold, committed once, released only while held,
and a duplicate delivery changes nothing."""

from __future__ import annotations

import asyncio
import uuid

import jsonschema
import sqlalchemy as sa
from structlog.testing import capture_logs

from catalog.adapters.db.reservations import stock_reservation_lines
from catalog.adapters.db.tables import inbox, outbox, products
from catalog.entrypoints.consumers.order_events import CONSUMER_NAME, ORDER_PAID, ORDER_PLACED
from catalog.use_cases.commit_stock import STOCK_COMMITTED
from catalog.use_cases.release_stock import STOCK_RELEASED
from catalog.use_cases.reserve_stock import STOCK_REJECTED, STOCK_RESERVED
from emporium_kit.messaging import EventEnvelope

from .conftest import StockWorld, contract, payload_lines, wait_until

FORMATS = jsonschema.FormatChecker()


def _valid(payload: object, schema_file: str) -> None:
    jsonschema.validate(payload, contract(schema_file), format_checker=FORMATS)


async def test_fifty_concurrent_orders_for_twenty_units_reserve_exactly_twenty(
    stock: StockWorld,
) -> None:
    product = await stock.add_product(on_hand=20)
    orders = [uuid.uuid4() for _ in range(50)]
    lowest_available: list[int] = []
    sampling = True

    async def sample() -> None:
        while sampling:
            on_hand, reserved = await stock.stock(product)
            lowest_available.append(on_hand - reserved)
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    with capture_logs() as logs:
        await asyncio.gather(*(stock.place(order, [(product, 1)]) for order in orders))

        async def all_decided() -> bool:
            return len(await stock.statuses(orders)) == 50

        await wait_until(all_decided, within=60)
    sampling = False
    await sampler
    assert [e for e in logs if e["event"] == "event_handler_failed"] == []  # none retried

    statuses = await stock.statuses(orders)
    reserved_orders = {o for o, s in statuses.items() if s == "reserved"}
    rejected_orders = {o for o, s in statuses.items() if s == "rejected"}
    assert (len(reserved_orders), len(rejected_orders)) == (20, 30)
    assert await stock.stock(product) == (20, 20)
    assert min(lowest_available) >= 0

    reserved_events = await stock.events(STOCK_RESERVED)
    rejected_events = await stock.events(STOCK_REJECTED)
    assert {uuid.UUID(p["order_id"]) for p in reserved_events} == reserved_orders
    assert {uuid.UUID(p["order_id"]) for p in rejected_events} == rejected_orders
    for payload in reserved_events:
        _valid(payload, "stock_reserved.v1.json")
        assert payload_lines(payload) == [{"product_id": str(product), "quantity": 1}]
    for payload in rejected_events:
        _valid(payload, "stock_rejected.v1.json")
        assert payload_lines(payload) == [
            {
                "product_id": str(product),
                "quantity": 1,
                "reason": "insufficient_stock",
                "requested": 1,
                "available": 0,
            }
        ]


async def test_an_order_is_reserved_all_or_none_with_a_reason_per_refused_line(
    stock: StockWorld,
) -> None:
    plenty = await stock.add_product(on_hand=5)
    scarce = await stock.add_product(on_hand=1)
    deleted = await stock.add_product(on_hand=9, deleted=True)
    unknown = uuid.uuid4()
    refused, accepted = uuid.uuid4(), uuid.uuid4()

    first = await stock.place(refused, [(plenty, 2), (scarce, 2), (deleted, 1), (unknown, 1)])
    await stock.wait_handled(first)
    assert await stock.status(refused) == "rejected"
    assert await stock.stock(plenty) == (5, 0)
    assert await stock.stock(scarce) == (1, 0)
    assert await stock.stock(deleted) == (9, 0)
    (payload,) = await stock.events(STOCK_REJECTED, refused)
    _valid(payload, "stock_rejected.v1.json")
    expected = {
        str(scarce): {
            "product_id": str(scarce),
            "quantity": 2,
            "reason": "insufficient_stock",
            "requested": 2,
            "available": 1,
        },
        str(deleted): {"product_id": str(deleted), "quantity": 1, "reason": "product_deleted"},
        str(unknown): {"product_id": str(unknown), "quantity": 1, "reason": "unknown_product"},
    }
    assert payload_lines(payload) == [expected[key] for key in sorted(expected)]
    assert await stock.events(STOCK_RESERVED) == []

    second = await stock.place(accepted, [(scarce, 1), (plenty, 2)])
    await stock.wait_handled(second)
    assert await stock.status(accepted) == "reserved"
    assert await stock.stock(plenty) == (5, 2)
    assert await stock.stock(scarce) == (1, 1)
    (reserved,) = await stock.events(STOCK_RESERVED, accepted)
    _valid(reserved, "stock_reserved.v1.json")
    assert payload_lines(reserved) == sorted(
        [
            {"product_id": str(plenty), "quantity": 2},
            {"product_id": str(scarce), "quantity": 1},
        ],
        key=lambda line: str(line["product_id"]),
    )
    async with stock.engine.connect() as conn:
        lines = (
            await conn.execute(
                sa.select(
                    stock_reservation_lines.c.product_id, stock_reservation_lines.c.quantity
                ).where(stock_reservation_lines.c.order_id == accepted)
            )
        ).all()
    assert sorted(lines) == sorted([(plenty, 2), (scarce, 1)])


async def test_a_duplicate_delivery_changes_nothing(stock: StockWorld) -> None:
    product = await stock.add_product(on_hand=10)
    order = uuid.uuid4()
    placed = EventEnvelope.new(
        ORDER_PLACED,
        {
            "order_id": str(order),
            "lines": [{"product_id": str(product), "quantity": 3}],
            "placed_at": "2026-12-02T14:00:00+00:00",
        },
    )
    await stock.publish(placed)
    await stock.publish(placed)  # the same message id again: a redelivery
    await stock.wait_handled(placed)
    paid = EventEnvelope.new(
        ORDER_PAID, {"order_id": str(order), "paid_at": "2026-12-02T14:01:00+00:00"}
    )
    for _ in range(3):
        await stock.publish(paid)
    await stock.wait_handled(paid)
    await stock.settled()

    assert await stock.stock(product) == (7, 0)
    assert len(await stock.events(STOCK_RESERVED, order)) == 1
    assert len(await stock.events(STOCK_COMMITTED, order)) == 1
    async with stock.engine.connect() as conn:
        rows = await conn.scalar(
            sa.select(sa.func.count()).where(
                inbox.c.consumer == CONSUMER_NAME, inbox.c.message_id.in_([placed.id, paid.id])
            )
        )
    assert rows == 2


async def test_payment_commits_the_reservation_once(stock: StockWorld) -> None:
    product = await stock.add_product(on_hand=20)
    order = uuid.uuid4()
    await stock.wait_handled(await stock.place(order, [(product, 3)]))
    assert await stock.stock(product) == (20, 3)

    await stock.wait_handled(await stock.pay(order))
    assert await stock.status(order) == "committed"
    assert await stock.stock(product) == (17, 0)
    (payload,) = await stock.events(STOCK_COMMITTED, order)
    _valid(payload, "stock_committed.v1.json")
    assert payload_lines(payload) == [{"product_id": str(product), "quantity": 3}]

    # The orders service paying twice (another message): nothing more leaves stock.
    await stock.wait_handled(await stock.pay(order))
    assert await stock.stock(product) == (17, 0)
    assert len(await stock.events(STOCK_COMMITTED, order)) == 1


async def test_cancellation_releases_the_reservation(stock: StockWorld) -> None:
    product = await stock.add_product(on_hand=4)
    order = uuid.uuid4()
    await stock.wait_handled(await stock.place(order, [(product, 4)]))
    assert await stock.stock(product) == (4, 4)

    await stock.wait_handled(await stock.cancel(order, "expired"))
    assert await stock.status(order) == "released"
    assert await stock.stock(product) == (4, 0)
    (payload,) = await stock.events(STOCK_RELEASED, order)
    _valid(payload, "stock_released.v1.json")
    assert payload_lines(payload) == [{"product_id": str(product), "quantity": 4}]

    # Released units can be ordered again; a second cancellation changes nothing.
    again = uuid.uuid4()
    await stock.wait_handled(await stock.place(again, [(product, 4)]))
    await stock.wait_handled(await stock.cancel(order))
    assert await stock.status(again) == "reserved"
    assert await stock.stock(product) == (4, 4)
    assert len(await stock.events(STOCK_RELEASED, order)) == 1


async def test_release_after_commit_is_refused_and_acknowledged(stock: StockWorld) -> None:
    product = await stock.add_product(on_hand=6)
    order = uuid.uuid4()
    await stock.wait_handled(await stock.place(order, [(product, 2)]))
    await stock.wait_handled(await stock.pay(order))
    assert await stock.stock(product) == (4, 0)

    cancelled = await stock.cancel(order, "customer")
    await stock.wait_handled(cancelled)  # acknowledged, its inbox row committed
    await stock.settled()
    assert await stock.status(order) == "committed"
    assert await stock.stock(product) == (4, 0)
    assert await stock.events(STOCK_RELEASED, order) == []


async def test_a_payment_for_an_unknown_reservation_is_dead_lettered_and_commits_on_replay(
    stock: StockWorld,
) -> None:
    product = await stock.add_product(on_hand=5)
    order = uuid.uuid4()
    paid = await stock.pay(order)
    letter = await stock.dead_letter(paid.id)
    assert (letter.service, letter.queue, letter.kind, letter.name) == (
        "catalog",
        stock.queue,
        "event",
        ORDER_PAID,
    )
    assert letter.attempts == 1  # not retried: it cannot pass by itself
    assert "ReservationNotFound" in letter.last_error
    assert not await stock.handled(paid)

    await stock.wait_handled(await stock.place(order, [(product, 2)]))
    # The operator's replay puts the original message back on its queue.
    await stock.channel.default_exchange.publish(letter.replay_message(), routing_key=letter.queue)
    await stock.wait_handled(paid)
    assert await stock.status(order) == "committed"
    assert await stock.stock(product) == (3, 0)


async def test_a_payment_for_a_rejected_order_is_dead_lettered_and_changes_nothing(
    stock: StockWorld,
) -> None:
    product = await stock.add_product(on_hand=1)
    order = uuid.uuid4()
    await stock.wait_handled(await stock.place(order, [(product, 2)]))
    assert await stock.status(order) == "rejected"
    paid = await stock.pay(order)
    letter = await stock.dead_letter(paid.id)
    assert "CommitRefused" in letter.last_error or "rejected" in letter.last_error
    assert await stock.status(order) == "rejected"
    assert await stock.stock(product) == (1, 0)


async def test_a_cancellation_that_overtakes_its_placement_reserves_nothing(
    stock: StockWorld,
) -> None:
    product = await stock.add_product(on_hand=3)
    order = uuid.uuid4()
    await stock.wait_handled(await stock.cancel(order, "customer"))
    assert await stock.status(order) == "released"
    late = await stock.place(order, [(product, 1)])
    await stock.wait_handled(late)
    assert await stock.status(order) == "released"
    assert await stock.stock(product) == (3, 0)
    assert await stock.events(STOCK_RESERVED, order) == []
    assert await stock.events(STOCK_REJECTED, order) == []


async def test_a_malformed_order_event_is_dead_lettered_at_once(stock: StockWorld) -> None:
    product = await stock.add_product(on_hand=3)
    bad = await stock.send(
        ORDER_PLACED,
        {"order_id": str(uuid.uuid4()), "lines": [{"product_id": str(product), "quantity": 0}]},
        valid=False,
    )
    letter = await stock.dead_letter(bad.id)
    assert letter.attempts == 1
    assert "ValidationError" in letter.last_error
    assert await stock.stock(product) == (3, 0)


async def test_a_placement_that_fails_for_a_while_is_retried_then_reserves_once(
    stock: StockWorld,
) -> None:
    """A database error that can pass (here: the products table locked past the
    statement timeout) is retried with backoff, and the effect happens once."""
    product = await stock.add_product(on_hand=2)
    order = uuid.uuid4()
    timeout = stock.settings.db_statement_timeout_ms / 1000
    async with stock.engine.connect() as conn, conn.begin():
        # Hold the product's row lock past the statement timeout: the consumer's
        # FOR UPDATE waits, is cancelled by PostgreSQL, and its attempt rolls back.
        await conn.execute(
            sa.select(products.c.id).where(products.c.id == product).with_for_update()
        )
        placed = await stock.place(order, [(product, 2)])
        await asyncio.sleep(timeout + 1)
        assert await stock.status(order) is None
        assert not await stock.handled(placed)
    await stock.wait_handled(placed, within=30)
    await stock.settled()
    assert await stock.stock(product) == (2, 2)
    assert len(await stock.events(STOCK_RESERVED, order)) == 1


async def test_order_events_reach_the_queue_through_the_events_exchange(
    stock: StockWorld,
) -> None:
    """The queue is bound to the three order events on emporium.events. (A
    cancellation of an order no one placed: any other catalogue on this broker
    only records an empty released reservation for it.)"""
    order = uuid.uuid4()
    cancelled = EventEnvelope.new(
        "orders.order_cancelled.v1",
        {"order_id": str(order), "reason": "staff", "cancelled_at": "2026-12-02T14:00:00+00:00"},
    )
    await stock.publish(cancelled, through_topic=True)
    await stock.wait_handled(cancelled)
    assert await stock.status(order) == "released"


async def _deadlocks(stock: StockWorld) -> int:
    async with stock.engine.connect() as conn:
        count = await conn.scalar(
            sa.text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        )
    return int(count or 0)


async def test_orders_sharing_products_in_opposite_orders_never_deadlock(
    stock: StockWorld,
) -> None:
    first = await stock.add_product(on_hand=100)
    second = await stock.add_product(on_hand=100)
    await asyncio.sleep(1.5)  # let earlier tests' statistics reach pg_stat_database
    before = await _deadlocks(stock)
    orders = [uuid.uuid4() for _ in range(40)]
    await asyncio.gather(
        *(
            stock.place(order, [(first, 1), (second, 1)] if n % 2 else [(second, 1), (first, 1)])
            for n, order in enumerate(orders)
        )
    )

    async def all_decided() -> bool:
        return len(await stock.statuses(orders)) == len(orders)

    await wait_until(all_decided, within=60)
    await stock.settled()
    assert set((await stock.statuses(orders)).values()) == {"reserved"}
    assert await stock.stock(first) == (100, 40)
    assert await stock.stock(second) == (100, 40)
    await asyncio.sleep(1.5)  # backends report their statistics about once a second
    assert await _deadlocks(stock) == before


async def test_payment_and_cancellation_racing_leave_stock_consistent(stock: StockWorld) -> None:
    """Each order ends committed (its units sold) or released (given back), never both."""
    product = await stock.add_product(on_hand=30)
    orders = [uuid.uuid4() for _ in range(15)]
    for order in orders:
        await stock.place(order, [(product, 2)])

    async def all_reserved() -> bool:
        statuses = await stock.statuses(orders)
        return len(statuses) == len(orders) and set(statuses.values()) == {"reserved"}

    await wait_until(all_reserved, within=30)
    await asyncio.gather(
        *(stock.pay(order) for order in orders), *(stock.cancel(o) for o in orders)
    )
    await stock.settled(within=30)

    statuses = await stock.statuses(orders)
    committed = [o for o in orders if statuses[o] == "committed"]
    released = [o for o in orders if statuses[o] == "released"]
    assert len(committed) + len(released) == len(orders)
    assert await stock.stock(product) == (30 - 2 * len(committed), 0)
    assert len(await stock.events(STOCK_COMMITTED)) == len(committed)
    assert len(await stock.events(STOCK_RELEASED)) == len(released)


async def test_a_cancellation_racing_its_placement_leaves_nothing_reserved(
    stock: StockWorld,
) -> None:
    """The customer cancels while the order is still pending: whichever of the two
    events is handled first, each order ends released and no unit stays held."""
    product = await stock.add_product(on_hand=50)
    orders = [uuid.uuid4() for _ in range(12)]
    with capture_logs() as logs:
        await asyncio.gather(
            *(stock.place(order, [(product, 2)]) for order in orders),
            *(stock.cancel(order, "customer") for order in orders),
        )

        async def all_released() -> bool:
            statuses = await stock.statuses(orders)
            return len(statuses) == len(orders) and set(statuses.values()) == {"released"}

        await wait_until(all_released, within=60)
        await stock.settled(within=30)
    # The two events of an order wait for each other (the order's lock): no attempt
    # failed on the reservation's primary key, none was retried.
    assert [e for e in logs if e["event"] == "event_handler_failed"] == []
    assert set((await stock.statuses(orders)).values()) == {"released"}
    assert await stock.stock(product) == (50, 0)
    reserved = {p["order_id"] for p in await stock.events(STOCK_RESERVED)}
    released = {p["order_id"] for p in await stock.events(STOCK_RELEASED)}
    assert reserved == released  # every order reserved first was released


async def test_the_stock_answer_continues_the_trace_of_the_order_event(stock: StockWorld) -> None:
    """The outbox row keeps the trace context of the event it answers, so the
    relay's publish and the orders service's consumer join the same trace."""
    product = await stock.add_product(on_hand=2)
    order = uuid.uuid4()
    trace_id, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    placed = EventEnvelope.new(
        ORDER_PLACED,
        {
            "order_id": str(order),
            "lines": [{"product_id": str(product), "quantity": 1}],
            "placed_at": "2026-12-02T14:00:00+00:00",
        },
        headers={"traceparent": f"00-{trace_id}-{parent_span}-01"},
    )
    await stock.publish(placed)
    await stock.wait_handled(placed)
    async with stock.engine.connect() as conn:
        headers = await conn.scalar(
            sa.select(outbox.c.headers).where(
                outbox.c.routing_key == STOCK_RESERVED,
                outbox.c.payload["order_id"].astext == str(order),
            )
        )
    assert headers is not None
    assert headers["traceparent"].split("-")[1] == trace_id
