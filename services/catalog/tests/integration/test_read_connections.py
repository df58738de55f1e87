"""The read-only unit of work: SQL text on a pooled asyncpg connection, no transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.adapters.db.product_search import Statement
from catalog.adapters.db.repositories import fetch
from catalog.adapters.db.unit_of_work import SqlReadOnlyUnitOfWork, SqlUnitOfWorkFactory
from emporium_kit.database import DatabaseSettings, create_engine, is_unavailable


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    # One pooled connection, no overflow: a broken one handed out again would show.
    engine = create_engine(
        DatabaseSettings(url=database_url, pool_size=1, max_overflow=0),
        application_name="catalog-read-test",
    )
    yield engine
    await engine.dispose()


async def backend(uow: SqlReadOnlyUnitOfWork) -> tuple[int, bool]:
    """The PostgreSQL backend the unit of work reads on, and whether it is in a transaction."""
    driver = await uow.products._driver()  # type: ignore[attr-defined]
    rows = await fetch(driver, Statement("SELECT pg_backend_pid() AS pid", ()))
    return rows[0]["pid"], driver.is_in_transaction()


async def test_reads_run_outside_a_transaction_on_one_pooled_connection(
    engine: AsyncEngine,
) -> None:
    factory = SqlUnitOfWorkFactory(engine)
    async with factory(read_only=True) as first:
        pid, in_transaction = await backend(first)
        assert isinstance(await first.categories.all(), list)
        assert await first.products.batch([]) == []
    async with factory(read_only=True) as second:
        assert await backend(second) == (pid, False)
    assert not in_transaction
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_connection_that_died_under_a_read_is_not_handed_out_again(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    factory = SqlUnitOfWorkFactory(engine)
    async with factory(read_only=True) as uow:
        pid, _ = await backend(uow)
    await db.execute("SELECT pg_terminate_backend($1)", pid)

    # asyncpg tells the loss in one of three ways, depending on when it noticed it
    # (closed before, under or mid-way through the statement): each one the kit
    # answers with a 503.
    with pytest.raises(Exception) as lost:  # noqa: PT011 - the kit's mapping decides
        async with factory(read_only=True) as uow:
            await uow.categories.all()
    assert is_unavailable(lost.value), repr(lost.value)
    async with factory(read_only=True) as uow:
        fresh, _ = await backend(uow)
        assert isinstance(await uow.categories.all(), list)
    assert fresh != pid


async def test_a_read_only_unit_of_work_refuses_to_write(engine: AsyncEngine) -> None:
    factory = SqlUnitOfWorkFactory(engine)
    async with factory(read_only=True) as uow:
        with pytest.raises(RuntimeError, match="only reads"):
            await uow.products.set_on_hand(uuid.uuid4(), 1)
