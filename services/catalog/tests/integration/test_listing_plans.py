"""Every statement shape the product listing generates is served by an index on enough rows
for the planner to choose (20,000 live products, 1,000 deleted, analysed): ``EXPLAIN``
names the expected index and never a sequential scan of ``products``.

The statements are the repository's own (``SqlProductRepository.listing``: the
listing's statement after the reads before it, a category's subtree and the
alternatives of a search's unknown words), explained with their parameters bound as
the service binds them, on connections that plan every execution with its values
as the catalog's do (``plan_cache_mode=force_custom_plan``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from catalog.adapters.db.product_search import ALTERNATIVES, PRODUCT_BY_ID, Statement
from catalog.adapters.db.repositories import SqlProductRepository
from catalog.domain.listing import Position, ProductQuery, Sort
from emporium_testkit.isolation import migrate_fresh, worker_database_url

SERVICE_ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = 20_000
ROOT = uuid.UUID(int=1)


# Names as a catalogue has them: a brand (144 made-up words, each on 0.7 % of the
# products), an adjective, a kind of thing and a model number.
FILL = """
INSERT INTO products (id, sku, name, description, price_amount, currency, category_id,
                      attributes, image_urls, on_hand, reserved, created_at, updated_at, deleted_at)
SELECT gen_random_uuid(), 'SKU-' || n,
       initcap((ARRAY['zen','aro','vel','kor','lum','nov','tri','sol','mag','quin','dex','pix'])
                 [n % 12 + 1] ||
               (ARRAY['ith','ora','ex','ium','ar','on','us','ix','ent','ade','ova','yn'])
                 [(n / 12) % 12 + 1])
         || ' ' ||
       (ARRAY['Wireless','Compact','Classic','Premium','Rugged','Smart','Vintage','Studio'])
         [n % 8 + 1]
         || ' ' ||
       (ARRAY['headphones','speaker','lamp','chair','kettle','backpack','keyboard','monitor',
              'camera','blender','jacket','watch','router','notebook','guitar','telescope'])
         [n % 16 + 1]
         || ' ' || (n % 1000),
       'A ' || (ARRAY['red','blue','green','black','white','silver'])[n % 6 + 1]
         || ' item for home and travel, model ' || (n % 997),
       (n * 7919) % 100000, 'USD',
       (SELECT id FROM categories WHERE slug = 'leaf-' || (n % 40)),
       jsonb_build_object('colour', (ARRAY['red','blue','green','black','white','silver',
                                            'grey','pink','gold','navy'])[n % 10 + 1],
                          'size', n % 20, 'wireless', n % 3 = 0),
       '{}', n % 7, 0,
       now() - make_interval(secs => n), now(),
       CASE WHEN n > :live THEN now() END
FROM generate_series(1, :total) AS n
"""


@pytest.fixture(scope="module")
def plans_database_url() -> str:
    """A database of this module's own: its 21,000 rows never meet the API tests'."""
    url = worker_database_url("emporium_catalog_plans")
    migrate_fresh(url, SERVICE_ROOT / "alembic.ini")
    return url


@pytest.fixture(scope="module")
async def filled(plans_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(
        plans_database_url,
        connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan"}},
    )
    async with engine.begin() as conn:
        # 5 roots, 8 children each, 1 leaf under each child: 40 leaves hold the products.
        await conn.execute(
            sa.text(
                "INSERT INTO categories (id, name, slug, parent_id, path) VALUES "
                "(:id, 'Root', 'root', NULL, '/' || replace(:id_text, '-', '') || '/')"
            ),
            {"id": ROOT, "id_text": str(ROOT)},
        )
        for child in range(40):
            child_id, leaf_id = uuid.uuid4(), uuid.uuid4()
            await conn.execute(
                sa.text(
                    "INSERT INTO categories (id, name, slug, parent_id, path) VALUES "
                    "(:c, 'Child', 'child-' || :n, :root, :cpath), "
                    "(:l, 'Leaf', 'leaf-' || :n, :c, :lpath)"
                ),
                {
                    "c": child_id,
                    "l": leaf_id,
                    "n": str(child),
                    "root": ROOT,
                    "cpath": f"/{ROOT.hex}/{child_id.hex}/",
                    "lpath": f"/{ROOT.hex}/{child_id.hex}/{leaf_id.hex}/",
                },
            )
        await conn.execute(sa.text(FILL), {"live": PRODUCTS, "total": PRODUCTS + 1000})
    # As the seed leaves a table: analysed, and vacuumed (all-visible pages, so the
    # filtered listing's walk reads only its index).
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(sa.text("VACUUM (ANALYZE) products"))
        await autocommit.execute(sa.text("VACUUM (ANALYZE) categories"))
    yield engine
    await engine.dispose()


async def _rows(conn: AsyncConnection, statement: Statement) -> list[Any]:
    driver = (await conn.get_raw_connection()).driver_connection
    rows: list[Any] = await driver.fetch(statement.sql, *statement.args)
    return rows


async def plan_of(engine: AsyncEngine, query: ProductQuery) -> str:
    """The plan of the listing's statement, after the reads that come before it (its
    category's subtree, its unknown words' alternatives), as the repository runs them."""
    async with engine.connect() as conn:
        statement = await SqlProductRepository(conn).listing(query)
        assert statement is not None, f"no category {query.category!r}"
        explained = Statement("EXPLAIN " + statement.sql, statement.args)
        return "\n".join(row[0] for row in await _rows(conn, explained))


async def executed_plan_nodes(engine: AsyncEngine, query: ProductQuery) -> list[dict[str, Any]]:
    """Every node of the listing statement's executed plan (``EXPLAIN (ANALYZE, VERBOSE)``),
    the root first, as the repository writes the statement."""
    async with engine.connect() as conn:
        statement = await SqlProductRepository(conn).listing(query)
        assert statement is not None
        explained = Statement(
            "EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) " + statement.sql, statement.args
        )
        [row] = await _rows(conn, explained)
    explain = row[0] if isinstance(row[0], list) else orjson.loads(row[0])

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("Plans", ()) for n in nodes(child))]

    return nodes(explain[0]["Plan"])


MIDDLE = datetime.now(UTC) - timedelta(seconds=PRODUCTS // 2)
AFTER_ID = uuid.UUID(int=0)

SHAPES: list[tuple[str, ProductQuery, set[str]]] = [
    ("newest", ProductQuery(limit=21), {"ix_products_created_at_id"}),
    (
        "newest, next page",
        ProductQuery(limit=21, after=Position(Sort.NEWEST, MIDDLE, AFTER_ID)),
        {"ix_products_created_at_id"},
    ),
    ("price_asc", ProductQuery(sort=Sort.PRICE_ASC, limit=21), {"ix_products_price_amount_id"}),
    (
        "price_asc, next page",
        ProductQuery(
            sort=Sort.PRICE_ASC, limit=21, after=Position(Sort.PRICE_ASC, 50_000, AFTER_ID)
        ),
        {"ix_products_price_amount_id"},
    ),
    ("price_desc", ProductQuery(sort=Sort.PRICE_DESC, limit=21), {"ix_products_price_amount_id"}),
    (
        "price_desc, next page",
        ProductQuery(
            sort=Sort.PRICE_DESC, limit=21, after=Position(Sort.PRICE_DESC, 50_000, AFTER_ID)
        ),
        {"ix_products_price_amount_id"},
    ),
    ("name", ProductQuery(sort=Sort.NAME, limit=21), {"ix_products_name_id"}),
    (
        "name, next page",
        ProductQuery(sort=Sort.NAME, limit=21, after=Position(Sort.NAME, "Premium", AFTER_ID)),
        {"ix_products_name_id"},
    ),
    (
        "q, relevance",
        ProductQuery(text="zenith", sort=Sort.RELEVANCE, limit=21),
        {"ix_products_search"},
    ),
    (
        "q with a typo, relevance",
        ProductQuery(text="zenth", sort=Sort.RELEVANCE, limit=21),
        {"ix_products_search"},
    ),
    (
        "q, relevance, next page",
        ProductQuery(
            text="lumora telescope",
            sort=Sort.RELEVANCE,
            limit=21,
            after=Position(Sort.RELEVANCE, 0.5, AFTER_ID),
        ),
        {"ix_products_search"},
    ),
    (
        "long q (full text alone), relevance",
        ProductQuery(
            text="zenith wireless telescope for the whole family with a tripod and a case",
            sort=Sort.RELEVANCE,
            limit=21,
        ),
        {"ix_products_search"},
    ),
    (
        "q, newest",
        ProductQuery(text="zenith", sort=Sort.NEWEST, limit=21),
        # With a few hundred matches the planner walks the newest-first index and
        # filters; with fewer it reads both text indexes and sorts: both are indexed.
        {"ix_products_search", "ix_products_created_at_id"},
    ),
    (
        "category subtree",
        ProductQuery(category="child-3", limit=21),
        {"ix_products_category_id_created_at_id", "ix_products_created_at_id"},
    ),
    (
        "one category, newest",
        ProductQuery(category="leaf-3", limit=21),
        {"ix_products_category_id_created_at_id"},
    ),
    (
        "root category (every product under it), newest",
        ProductQuery(category="root", limit=21),
        {"ix_products_created_at_id"},
    ),
    (
        "attribute",
        ProductQuery(attributes=(("colour", "navy"),), limit=21),
        {"ix_products_attributes", "ix_products_created_at_id"},
    ),
    (
        "typed attribute",
        ProductQuery(attributes=(("size", "7"), ("wireless", "true")), limit=21),
        {"ix_products_attributes", "ix_products_created_at_id"},
    ),
    (
        "category + price + attribute",
        ProductQuery(
            category="child-3",
            min_price=1_000,
            max_price=60_000,
            attributes=(("colour", "navy"),),
            limit=21,
        ),
        {
            "ix_products_category_id_created_at_id",
            "ix_products_attributes",
            "ix_products_created_at_id",
        },
    ),
    (
        "price range, price_asc",
        ProductQuery(min_price=1_000, max_price=2_000, sort=Sort.PRICE_ASC, limit=21),
        {"ix_products_price_amount_id"},
    ),
    ("in stock", ProductQuery(in_stock=True, limit=21), {"ix_products_created_at_id"}),
    (
        "q + category + attribute + in stock",
        ProductQuery(
            text="korex headphones",
            category="root",
            attributes=(("colour", "red"),),
            in_stock=True,
            limit=21,
            sort=Sort.RELEVANCE,
        ),
        {
            "ix_products_search",
            "ix_products_attributes",
            "ix_products_category_id_created_at_id",
        },
    ),
]


@pytest.mark.parametrize(("shape", "query", "indexes"), SHAPES, ids=[s for s, _, _ in SHAPES])
async def test_every_listing_shape_reads_an_index_not_the_table(
    filled: AsyncEngine, shape: str, query: ProductQuery, indexes: set[str]
) -> None:
    plan = await plan_of(filled, query)

    assert "Seq Scan on products" not in plan, plan
    assert any(index in plan for index in indexes), plan


async def test_a_typo_is_corrected_from_the_vocabulary_and_read_through_the_full_text_index(
    filled: AsyncEngine,
) -> None:
    query = ProductQuery(text="Vellium headphnes", sort=Sort.RELEVANCE, limit=21)
    async with filled.connect() as conn:
        statement = await SqlProductRepository(conn).listing(query)
    assert statement is not None
    # The fill's brand is "Velium": both words are typos.
    assert statement.args[0] == "(vellium | velium) & (headphnes | headphones)", statement.args

    plan = await plan_of(filled, query)

    assert "ix_products_search" in plan, plan
    assert "Seq Scan on products" not in plan, plan


async def test_the_vocabulary_is_read_through_its_indexes_never_scanned(
    filled: AsyncEngine,
) -> None:
    async with filled.connect() as conn:
        # As many words as a shop of a few thousand products uses (the fill has few):
        # here the planner would scan the table, computing each word's similarity.
        await conn.execute(
            sa.text(
                "INSERT INTO search_words (word) SELECT 'w' || md5(n::text) "
                "FROM generate_series(1, 20000) AS n ON CONFLICT DO NOTHING"
            )
        )
        await conn.execute(sa.text("ANALYZE search_words"))
        await conn.commit()

        driver = (await conn.get_raw_connection()).driver_connection
        # One transaction, so pg_stat_xact_user_tables counts this lookup's reads of
        # search_words (each statement outside one would be a transaction of its own).
        async with driver.transaction():
            found = await driver.fetch(ALTERNATIVES, ["headphnes", "telescpe", "lamp"])
            scans = await driver.fetch(
                "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables "
                "WHERE relname = 'search_words'"
            )

    assert {(row["word"], row["alternative"]) for row in found} >= {
        ("headphnes", "headphones"),
        ("telescpe", "telescope"),
    }
    assert all(row["word"] != "lamp" for row in found)  # a known word has none
    assert scans[0]["seq_scan"] == 0, scans
    assert scans[0]["idx_scan"] > 0, scans


async def test_the_sorted_listings_need_no_sort_step(filled: AsyncEngine) -> None:
    for sort in (Sort.NEWEST, Sort.PRICE_ASC, Sort.PRICE_DESC, Sort.NAME):
        plan = await plan_of(filled, ProductQuery(sort=sort, limit=21))
        assert "Sort" not in plan, plan


async def test_one_categorys_listing_reads_its_newest_first_index_and_needs_no_sort(
    filled: AsyncEngine,
) -> None:
    plan = await plan_of(filled, ProductQuery(category="leaf-3", limit=21))

    assert "ix_products_category_id_created_at_id" in plan, plan
    assert "Sort" not in plan, plan


async def test_a_long_query_is_matched_by_the_full_text_index_alone(filled: AsyncEngine) -> None:
    long_text = "zenith wireless telescope for the whole family with a tripod and a case"
    plan = await plan_of(filled, ProductQuery(text=long_text, sort=Sort.RELEVANCE, limit=21))

    assert "ix_products_search" in plan, plan
    assert "to_tsquery('english'::regconfig" not in plan.replace("websearch_to_tsquery", ""), plan


async def test_a_product_by_id_reads_the_primary_key(filled: AsyncEngine) -> None:
    async with filled.connect() as conn:
        plan = await _rows(conn, Statement("EXPLAIN " + PRODUCT_BY_ID, (uuid.uuid4(),)))

    assert "pk_products" in "\n".join(row[0] for row in plan)


async def test_the_catalogs_connections_plan_every_execution_with_its_values(
    plans_database_url: str,
) -> None:
    # A generic plan (PostgreSQL's choice after five executions under "auto") knows
    # neither a category's ids nor a price range: it read the price index instead.
    from catalog.settings import CatalogSettings
    from emporium_kit.database import create_engine

    settings = CatalogSettings(database_url=plans_database_url)
    engine = create_engine(settings.database, application_name="catalog-plans-test")
    try:
        async with engine.connect() as conn:
            mode = (await conn.execute(sa.text("SHOW plan_cache_mode"))).scalar()
    finally:
        await engine.dispose()

    assert settings.db_plan_cache_mode == "force_custom_plan"
    assert mode == "force_custom_plan"


@pytest.mark.parametrize("sort", [Sort.RELEVANCE, Sort.PRICE_ASC], ids=["relevance", "price"])
async def test_a_text_search_reads_whole_rows_only_for_its_page(
    filled: AsyncEngine, sort: Sort
) -> None:
    """Every match is ranked and sorted, but only the page's rows are formed whole:
    the page's ids come first, then one primary-key read for each of them."""
    query = ProductQuery(text="headphones", sort=sort, limit=21)
    every = await executed_plan_nodes(filled, query)
    root = every[0]
    matching = [n for n in every if n.get("Alias") == "products"]  # the statement's inner read
    by_key = [n for n in every if n.get("Alias") == "p"]  # the page's rows
    assert matching, every
    assert not any("attributes" in c for n in matching for c in n["Output"]), matching
    assert [n.get("Index Name") for n in by_key] == ["pk_products"], every
    assert by_key[0]["Actual Loops"] <= 21
    assert any("attributes" in column for column in root["Output"]), root["Output"]


async def test_a_filtered_listing_newest_first_filters_in_the_index_and_reads_only_what_passes(
    filled: AsyncEngine,
) -> None:
    """Category, price and stock are answered by ix_products_created_at_id alone (an
    index-only walk); the table is read only for the products that pass them."""
    query = ProductQuery(
        category="root",
        min_price=1_000,
        max_price=60_000,
        in_stock=True,
        attributes=(("colour", "navy"),),
        limit=21,
    )
    every = await executed_plan_nodes(filled, query)
    walk = [n for n in every if n.get("Alias") == "products"]
    rows = [n for n in every if n.get("Alias") == "p"]
    assert [(n["Node Type"], n.get("Index Name")) for n in walk] == [
        ("Index Only Scan", "ix_products_created_at_id")
    ], every
    assert walk[0]["Heap Fetches"] == 0, walk
    assert [n.get("Index Name") for n in rows] == ["pk_products"], every
    # Only the products that passed the index's conditions were read from the table.
    assert rows[0]["Actual Loops"] == walk[0]["Actual Rows"]
    assert walk[0]["Actual Rows"] + walk[0]["Rows Removed by Filter"] > rows[0]["Actual Loops"]
