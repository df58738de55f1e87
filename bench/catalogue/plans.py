"""The plans of every listing shape the bench measures, with ANALYZE and BUFFERS, on seeded data.

    .venv/bin/python -m bench.catalogue.plans                       # the 100k bench database
    BENCH_CATALOG_PRODUCTS=1000000 .venv/bin/python -m bench.catalogue.plans
    .venv/bin/python -m bench.catalogue.plans --database-url postgresql+asyncpg://.../emporium_catalog

The statements are the service's own: each shape is a
:class:`catalog.domain.listing.ProductQuery` as the route builds it (one row more
than the page, for ``next_cursor``) written by the catalogue's repository
(``SqlProductRepository.listing``: the category's subtree and the typo
corrections looked up first), and executed the way the service executes it: SQL text on the
asyncpg connection, prepared and cached per connection, with the catalog's
``plan_cache_mode`` (``CATALOG_DB_PLAN_CACHE_MODE``, by default
``force_custom_plan``; ``--plan-cache-mode auto`` shows PostgreSQL's default,
under which a prepared statement may switch to one generic plan after five
executions). Each shape is executed ``EXECUTIONS`` times on one connection
with ``auto_explain`` (ANALYZE, BUFFERS) reporting every execution to the
client, and both the first plan and the last (the one the service settles
on) are printed. Without ``auto_explain`` (it needs a superuser), a plain
``EXPLAIN (ANALYZE, BUFFERS)`` of the first execution is printed instead.

The database is the bench's (``emporium_catalog_bench_<size>``, migrated and
seeded when missing) unless ``--database-url`` names another seeded one.
Prints markdown for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from bench.catalogue.cases import DEEP_POSITION, SHAPES, catalogue_environment
from bench.catalogue.database import bench_products, prepare
from catalog.adapters.db.product_search import Statement
from catalog.adapters.db.repositories import SqlProductRepository
from catalog.adapters.db.tables import products
from catalog.domain.listing import DEFAULT_PAGE_SIZE, Position, ProductQuery, Sort
from catalog.settings import CatalogSettings


@dataclass(frozen=True, slots=True)
class Shape:
    title: str
    request: str
    query: ProductQuery


def _attributes(params: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((k.removeprefix("attr."), v) for k, v in params.items() if k.startswith("attr."))


def _query(params: dict[str, str]) -> ProductQuery:
    """The ProductQuery the listing route builds for these parameters (first page)."""
    text = params.get("q")
    return ProductQuery(
        text=text,
        category=params.get("category"),
        min_price=int(params["min_price"]) if "min_price" in params else None,
        max_price=int(params["max_price"]) if "max_price" in params else None,
        attributes=_attributes(params),
        sort=Sort.RELEVANCE if text else Sort.NEWEST,
        limit=DEFAULT_PAGE_SIZE + 1,
    )


async def deep_position(conn: AsyncConnection, position: int) -> Position:
    """Where the page after ``position`` products (newest first) starts."""
    row = (
        await conn.execute(
            sa.select(products.c.created_at, products.c.id)
            .where(products.c.deleted_at.is_(None))
            .order_by(products.c.created_at.desc(), products.c.id.desc())
            .offset(position - 1)
            .limit(1)
        )
    ).one()
    return Position(sort=Sort.NEWEST, value=row.created_at, id=row.id)


async def shapes(conn: AsyncConnection) -> list[Shape]:
    found = [
        Shape(shape.what, "&".join(f"{k}={v}" for k, v in shape.params.items()),
              _query(shape.params))
        for shape in SHAPES
    ]  # fmt: skip
    position = await deep_position(conn, DEEP_POSITION)
    found.append(
        Shape(
            f"deep page: after product {DEEP_POSITION:,}, newest first",
            "cursor=<the cursor of that position>",
            ProductQuery(sort=Sort.NEWEST, limit=DEFAULT_PAGE_SIZE + 1, after=position),
        )
    )
    found.append(
        Shape(
            "anonymous listing: first page, newest first",
            "(no parameters)",
            ProductQuery(sort=Sort.NEWEST, limit=DEFAULT_PAGE_SIZE + 1),
        )
    )
    return found


EXECUTIONS = 8
AUTO_EXPLAIN = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_analyze = on",
    "SET auto_explain.log_buffers = on",
    "SET auto_explain.log_level = 'notice'",
    "SET client_min_messages = 'notice'",
)


_UUID_ARRAY = re.compile(r"'\{([0-9a-f-]{36}(?:,[0-9a-f-]{36})+)\}'::uuid\[\]")


def _abbreviated(line: str) -> str:
    """A subtree's array of ids as its size (a plan line of 2,000 characters says no more)."""
    return _UUID_ARRAY.sub(
        lambda m: f"'{{<{m.group(1).count(',') + 1} category ids>}}'::uuid[]", line
    )


def _plan_lines(message: str) -> list[str]:
    """auto_explain's message without its query text: the plan from its first node."""
    lines = message.splitlines()
    first = next((i for i, line in enumerate(lines) if "(cost=" in line), 0)
    return [_abbreviated(line) for line in lines[first:]]


async def _auto_explain(conn: AsyncConnection) -> list[str] | None:
    """Turn auto_explain on for this connection; the list its plans arrive in, or None."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        for statement in AUTO_EXPLAIN:
            await conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError as exc:
        print(f"auto_explain unavailable ({exc.orig}); plain EXPLAIN instead", file=sys.stderr)
        await conn.rollback()
        return None
    notices: list[str] = []
    driver.add_log_listener(lambda _conn, message: notices.append(message.message))
    return notices


def _listing_plan(notices: list[str]) -> str | None:
    return next((notice for notice in notices if "FROM products" in notice), None)


async def _reported(notices: list[str]) -> list[str]:
    """The plan auto_explain reported for the listing statement just run (notices arrive
    through the event loop)."""
    for _ in range(200):
        found = _listing_plan(notices)
        if found is not None:
            return _plan_lines(found)
        await asyncio.sleep(0.01)
    return ["(no plan reported)"]


async def _fetch(conn: AsyncConnection, statement: Statement) -> list[Any]:
    """The rows of ``statement`` run as the repository runs it (asyncpg, prepared)."""
    driver: Any = (await conn.get_raw_connection()).driver_connection
    rows: list[Any] = await driver.fetch(statement.sql, *statement.args)
    return rows


async def listing_of(conn: AsyncConnection, query: ProductQuery) -> Statement:
    """The listing statement of ``query``, built by the catalogue's repository: its
    category's subtree and its unknown words' alternatives (the typo correction)
    looked up first, as a request does."""
    statement = await SqlProductRepository(conn).listing(query)
    if statement is None:
        raise SystemExit(f"no category {query.category!r} in this database: is it seeded?")
    return statement


def _block(title: str, lines: Sequence[str]) -> list[str]:
    return [title, "", "```text", *lines, "```", ""]


async def explain_all(database_url: str, plan_cache_mode: str) -> str:
    engine = create_async_engine(
        database_url,
        pool_size=1,
        connect_args={"server_settings": {"plan_cache_mode": plan_cache_mode}},
    )
    out: list[str] = []
    try:
        async with engine.connect() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(products))).scalar()
            out.append(
                f"Plans on `{database_url.rsplit('/', 1)[-1]}` ({count:,} products), "
                f"plan_cache_mode `{plan_cache_mode}`.\n"
            )
            listed = await shapes(conn)
            notices = await _auto_explain(conn)
            for shape in listed:
                statement = await listing_of(conn, shape.query)
                out.append(f"#### {shape.title}: `?{shape.request}`\n")
                if notices is None:
                    await _fetch(conn, statement)  # warms the cache
                    explain = Statement(
                        "EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.args
                    )
                    plan = [row[0] for row in await _fetch(conn, explain)]
                    out += _block("EXPLAIN (ANALYZE, BUFFERS):", [str(line) for line in plan])
                    continue
                plans: list[list[str]] = []
                for _ in range(EXECUTIONS):
                    notices.clear()
                    rows = await _fetch(conn, statement)
                    # auto_explain reports when the executor ends, which for a portal of
                    # the extended protocol is when the next statement closes it.
                    await conn.exec_driver_sql("SELECT 1")
                    plans.append(await _reported(notices))
                generic = any("$" in line for line in plans[-1])
                out += _block(
                    f"Execution 1 of {EXECUTIONS} ({len(rows)} rows; a custom plan, as "
                    "`EXPLAIN` shows it):",
                    plans[0],
                )
                if plans[-1] == plans[0]:
                    continue
                out += _block(
                    f"Execution {EXECUTIONS}, what the service settles on "
                    f"({'the generic plan' if generic else 'still a custom plan'}):",
                    plans[-1],
                )
    finally:
        await engine.dispose()
    return "\n".join(out)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.catalogue.plans",
        description="EXPLAIN (ANALYZE, BUFFERS) of each catalogue listing shape.",
    )
    parser.add_argument(
        "--database-url",
        help="a seeded catalogue database (default: the bench's, seeded when missing)",
    )
    parser.add_argument(
        "--plan-cache-mode",
        choices=("auto", "force_custom_plan", "force_generic_plan"),
        help="PostgreSQL's plan_cache_mode (default: the catalog's, CATALOG_DB_PLAN_CACHE_MODE)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    url = args.database_url
    if url is None:
        url = prepare(catalogue_environment(), bench_products()).url
    mode = args.plan_cache_mode or CatalogSettings().db_plan_cache_mode
    print(asyncio.run(explain_all(url, mode)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
