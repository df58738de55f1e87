"""The listing's queries are served by their indexes, not by a scan and a sort."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from emporium_testkit.isolation import truncate_all
from ops.adapters.db.repositories import page_query


@pytest.fixture(scope="module")
async def filled(database_url: str) -> AsyncEngine:
    """20 000 dead letters over 50 queues, analysed, as a busy month might leave."""
    await truncate_all(database_url)
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO dead_letters (id, service, queue, kind, name, message_id, body, "
                "attempts, first_failed_at, last_failed_at, last_error, received_at) "
                "SELECT gen_random_uuid(), 'orders', 'queue-' || (n % 50), 'job', 'j', n::text, "
                "'\\x7b7d'::bytea, 3, now(), now(), 'boom', "
                "now() - make_interval(secs => n) FROM generate_series(1, 20000) AS n"
            )
        )
        await conn.execute(sa.text("ANALYZE dead_letters"))
    return engine


async def _plan(engine: AsyncEngine, query: sa.Select[object]) -> str:
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text(f"EXPLAIN {sql}"))).all()
    await engine.dispose()
    return "\n".join(row[0] for row in rows)


# A position in the middle of the rows: half of them come after it.
AFTER = (datetime.now(UTC) - timedelta(seconds=10_000), uuid.UUID(int=0))


@pytest.mark.parametrize("after", [None, AFTER])
async def test_the_listing_reads_the_received_at_index(filled: AsyncEngine, after) -> None:
    plan = await _plan(filled, page_query(limit=21, after=after, queue=None))

    assert "ix_dead_letters_received_at_id" in plan, plan
    assert "Sort" not in plan, plan


@pytest.mark.parametrize("after", [None, AFTER])
async def test_the_queue_filter_reads_the_queue_index(filled: AsyncEngine, after) -> None:
    plan = await _plan(filled, page_query(limit=21, after=after, queue="queue-7"))

    assert "ix_dead_letters_queue_received_at_id" in plan, plan
    assert "Sort" not in plan, plan
