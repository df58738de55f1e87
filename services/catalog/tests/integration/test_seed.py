"""``scripts/seed_catalog.py`` (``make seed``) against a real, migrated catalogue database.

The seed runs as the command ``make seed`` runs, in a child process, on a
database of this module's own (``emporium_catalog_seed_test_<worker>``, migrated
by Alembic like every test database of ADR 0005), so the products it loads
never meet the rows of the other catalogue tests and their truncations.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from emporium_testkit.isolation import migrate_fresh, worker_database_url

SERVICE_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = SERVICE_ROOT.parents[1] / "scripts" / "seed_catalog.py"
PRODUCTS = 1_200
ROOTS, CHILDREN_PER_ROOT, GRANDCHILDREN_PER_CHILD = 10, 8, 6
CATEGORIES = ROOTS * (1 + CHILDREN_PER_ROOT * (1 + GRANDCHILDREN_PER_CHILD))  # 570
# Every row with its physical version (xmin): a row rewritten with equal values differs.
TABLE_DIGEST = (
    "SELECT count(*), md5(string_agg(t.xmin::text || t::text, ',' ORDER BY t.id)) FROM {} t"
)


@pytest.fixture(scope="module")
def seed_database_url() -> str:
    url = worker_database_url("emporium_catalog_seed")
    migrate_fresh(url, SERVICE_ROOT / "alembic.ini")
    return url


@pytest.fixture
async def db(seed_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    url = make_url(seed_database_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    yield conn
    await conn.close()


async def seed(database_url: str, *arguments: str) -> str:
    """Run the seed script to its end; its output (it must exit 0)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--database-url", database_url, "--quiet", *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    text = output.decode()
    assert process.returncode == 0, text
    return text


async def digest(db: asyncpg.Connection, table: str) -> tuple[int, str]:
    row = await db.fetchrow(TABLE_DIGEST.format(table))
    assert row is not None
    return row[0], row[1]


async def index_definitions(db: asyncpg.Connection) -> list[str]:
    rows = await db.fetch(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'products' ORDER BY indexname"
    )
    return [row["indexdef"] for row in rows]


async def test_seed_loads_the_tree_and_products_and_a_second_run_changes_nothing(
    seed_database_url: str, db: asyncpg.Connection
) -> None:
    indexes_before = await index_definitions(db)

    # A threshold below PRODUCTS: this load takes the bulk path (indexes dropped and rebuilt).
    first = await seed(seed_database_url, "--products", str(PRODUCTS), "--rebuild-threshold", "500")

    assert f"seeded {PRODUCTS:,} products (0 were present)" in first
    assert "6 indexes rebuilt" in first
    # The load's pages marked all-visible, so index-only scans read no table pages.
    assert "(100% of the pages all-visible)" in first
    assert await db.fetchval(
        "SELECT relallvisible = relpages FROM pg_class WHERE oid = 'products'::regclass"
    )
    # The typo lookup's vocabulary has its statistics too (it had none: 0 rows planned).
    assert (
        await db.fetchval("SELECT reltuples FROM pg_class WHERE oid = 'search_words'::regclass")
        == await db.fetchval("SELECT count(*) FROM search_words")
        > 0
    )
    assert await index_definitions(db) == indexes_before
    assert await db.fetchval("SELECT count(*) FROM categories") == CATEGORIES
    assert await db.fetchval("SELECT count(*) FROM products") == PRODUCTS
    assert await db.fetchval("SELECT count(DISTINCT sku) FROM products") == PRODUCTS
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0  # seeding announces nothing

    categories_digest = await digest(db, "categories")
    products_digest = await digest(db, "products")
    second = await seed(seed_database_url, "--products", str(PRODUCTS))

    assert "already seeded" in second
    assert "nothing to load" in second
    assert await digest(db, "categories") == categories_digest
    assert await digest(db, "products") == products_digest


async def test_seeded_tree_is_three_levels_deep_with_products_in_the_leaves(
    seed_database_url: str, db: asyncpg.Connection
) -> None:
    await seed(seed_database_url, "--products", str(PRODUCTS))

    by_depth = await db.fetch(
        """
        WITH RECURSIVE tree AS (
            SELECT id, path, 1 AS depth, '/' || replace(id::text, '-', '') || '/' AS expected
            FROM categories WHERE parent_id IS NULL
            UNION ALL
            SELECT c.id, c.path, t.depth + 1, t.expected || replace(c.id::text, '-', '') || '/'
            FROM categories c JOIN tree t ON c.parent_id = t.id
        )
        SELECT depth, count(*) AS categories, count(*) FILTER (WHERE path <> expected) AS wrong
        FROM tree GROUP BY depth ORDER BY depth
        """
    )
    assert [(row["depth"], row["categories"], row["wrong"]) for row in by_depth] == [
        (1, ROOTS, 0),
        (2, ROOTS * CHILDREN_PER_ROOT, 0),
        (3, ROOTS * CHILDREN_PER_ROOT * GRANDCHILDREN_PER_CHILD, 0),
    ]
    children_per_parent = await db.fetch(
        "SELECT DISTINCT count(*) AS n FROM categories WHERE parent_id IS NOT NULL "
        "GROUP BY parent_id ORDER BY n"
    )
    assert [row["n"] for row in children_per_parent] == [GRANDCHILDREN_PER_CHILD, CHILDREN_PER_ROOT]
    outside_leaves = await db.fetchval(
        "SELECT count(*) FROM products p WHERE EXISTS "
        "(SELECT 1 FROM categories c WHERE c.parent_id = p.category_id) "
        "OR p.category_id IS NULL"
    )
    assert outside_leaves == 0
    departments = await db.fetchval(
        "SELECT count(DISTINCT split_part(c.path, '/', 2)) FROM products p "
        "JOIN categories c ON c.id = p.category_id"
    )
    assert departments == ROOTS


async def test_seeded_products_vary_and_are_searchable_with_a_typo(
    seed_database_url: str, db: asyncpg.Connection
) -> None:
    await seed(seed_database_url, "--products", str(PRODUCTS))

    stock = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE on_hand = 0) AS out_of_stock, "
        "count(*) FILTER (WHERE on_hand > 0) AS in_stock, max(reserved) AS reserved, "
        "min(price_amount) AS cheapest, count(DISTINCT price_amount) AS prices, "
        "count(DISTINCT currency) AS currencies FROM products"
    )
    assert stock is not None
    assert 0.04 * PRODUCTS < stock["out_of_stock"] < 0.12 * PRODUCTS
    assert stock["in_stock"] + stock["out_of_stock"] == PRODUCTS
    assert stock["reserved"] == 0
    assert stock["cheapest"] > 0
    assert stock["prices"] > PRODUCTS // 4
    assert stock["currencies"] == 1

    keys = await db.fetchval(
        "SELECT array_agg(DISTINCT k ORDER BY k) FROM products, jsonb_object_keys(attributes) k"
    )
    assert {"brand", "colour", "material", "rating", "size", "weight_g", "wireless"} <= set(keys)
    kinds = await db.fetchval(
        "SELECT array_agg(DISTINCT jsonb_typeof(v) ORDER BY jsonb_typeof(v)) "
        "FROM products, jsonb_each(attributes) AS e(k, v)"
    )
    assert kinds == ["boolean", "number", "string"]
    assert await db.fetchval("SELECT count(DISTINCT attributes->>'colour') FROM products") == 16
    assert await db.fetchval("SELECT count(DISTINCT name) FROM products") > 0.95 * PRODUCTS

    full_text = await db.fetchval(
        "SELECT count(*) FROM products "
        "WHERE search @@ websearch_to_tsquery('english'::regconfig, 'headphones')"
    )
    # The seed's COPY fills the vocabulary too (migration 0004's trigger): the typo's
    # alternative is a word of the seeded names, and it finds the same products.
    alternatives = await db.fetch(
        "SELECT alternative FROM search_word_alternatives(ARRAY['headphnes'])"
    )
    assert "headphones" in [row["alternative"] for row in alternatives]
    corrected = await db.fetchval(
        "SELECT count(*) FROM products "
        "WHERE search @@ to_tsquery('english'::regconfig, 'headphnes | headphones')"
    )
    assert corrected == full_text


async def test_a_larger_seed_adds_only_the_missing_products_and_keeps_the_others(
    seed_database_url: str, db: asyncpg.Connection
) -> None:
    await seed(seed_database_url, "--products", str(PRODUCTS))
    before = await digest(db, "products")

    more = await seed(seed_database_url, "--products", str(PRODUCTS + 300))

    assert f"seeded 300 products ({PRODUCTS:,} were present)" in more
    assert await db.fetchval("SELECT count(*) FROM products") == PRODUCTS + 300
    kept = await db.fetchrow(
        "SELECT count(*), md5(string_agg(t.xmin::text || t::text, ',' ORDER BY t.id)) "
        "FROM products t WHERE sku < $1",
        f"SD1-{PRODUCTS:07d}",
    )
    assert kept is not None
    assert (kept[0], kept[1]) == before
    assert await db.fetchval("SELECT count(*) FROM categories") == CATEGORIES
