"""The category and product repositories on SQLAlchemy Core.

Each works on the executor it is given: a unit of work's session (a write
transaction), or the session of an event consumer or job that owns the
transaction (a plain connection works too: the plan tests use one). Database
errors that mean a broken rule (a taken slug or SKU, a category that vanished)
become domain errors here.

The hot reads (the listing, and a product by id) run their SQL text
(``product_search``) on the asyncpg connection under the executor: a prepared
statement per connection, no SQLAlchemy statement, compilation or result objects
on the request path. The read-only unit of work's repositories
(:class:`SqlProductReads`, :class:`SqlCategoryReads`) have no SQLAlchemy
connection at all, only the asyncpg one of a pooled connection, and run SQL text
only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa
from cachetools import TTLCache
from opentelemetry import trace
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from catalog.adapters.db.product_search import (
    ALTERNATIVES,
    CATEGORIES_BY_PATH,
    PRODUCT_BY_ID,
    PRODUCT_COLUMNS,
    PRODUCTS_BY_IDS,
    Statement,
    corrected_text,
    listing_statement,
    subtree_statement,
    words_to_correct,
)
from catalog.adapters.db.tables import categories, products
from catalog.domain.categories import Category
from catalog.domain.errors import (
    ParentCategoryNotFound,
    ProductCategoryNotFound,
    SkuTaken,
    SlugTaken,
)
from catalog.domain.listing import ListedProduct, ProductQuery
from catalog.domain.money import Money
from catalog.domain.products import NewProduct, Product, StockLevel

Executor = AsyncSession | AsyncConnection

# Any constant: the key of the transaction-level advisory lock on the tree's shape.
_TREE_LOCK_KEY = 0x6361_7461_6C6F_67  # "catalog"


def _constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint asyncpg reports as violated."""
    cause = getattr(exc.orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None)
    return name if isinstance(name, str) else None


def category_of(fields: Mapping[Any, Any]) -> Category:
    """A category from a row's columns by name: a SQLAlchemy row's ``_mapping``, or an
    asyncpg record of :data:`CATEGORIES_BY_PATH` as it is."""
    return Category(
        id=fields["id"],
        name=fields["name"],
        slug=fields["slug"],
        parent_id=fields["parent_id"],
        path=fields["path"],
        created_at=fields["created_at"],
        updated_at=fields["updated_at"],
    )


def product_of(row: Any) -> Product:
    return Product(
        id=row.id,
        sku=row.sku,
        name=row.name,
        description=row.description,
        price=Money(row.price_amount, row.currency),
        category_id=row.category_id,
        attributes=dict(row.attributes),
        image_urls=tuple(row.image_urls),
        stock=StockLevel(on_hand=row.on_hand, reserved=row.reserved),
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def product_of_read(record: Any) -> Product:
    """A product from a row of ``product_search.SELECTED`` (attributes as JSON text)."""
    return Product(
        id=record["id"],
        sku=record["sku"],
        name=record["name"],
        description=record["description"],
        price=Money(record["price_amount"], record["currency"]),
        category_id=record["category_id"],
        attributes=orjson.loads(record["attributes"]),
        image_urls=tuple(record["image_urls"]),
        stock=StockLevel(on_hand=record["on_hand"], reserved=record["reserved"]),
        created_at=record["created_at"],
        updated_at=record["updated_at"],
        deleted_at=record["deleted_at"],
    )


def listed_product(record: Any) -> ListedProduct:
    """A listing's row of ``product_search.SELECTED`` and ``score``, as the listing shows
    it: the document ``ProductOut`` publishes (the attributes' JSON text passed through
    as it is; datetimes for orjson to write in RFC 3339), without a domain object."""
    product_id = record["id"]
    category_id = record["category_id"]
    on_hand = record["on_hand"]
    reserved = record["reserved"]
    price_amount = record["price_amount"]
    name = record["name"]
    created_at = record["created_at"]
    document = {
        "id": str(product_id),
        "sku": record["sku"],
        "name": name,
        "description": record["description"],
        "price": {"amount": price_amount, "currency": record["currency"]},
        "category_id": str(category_id) if category_id is not None else None,
        "attributes": orjson.Fragment(record["attributes"]),
        "image_urls": record["image_urls"],
        "stock": {"on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved},
        "created_at": created_at,
        "updated_at": record["updated_at"],
    }
    return ListedProduct(document, product_id, created_at, price_amount, name, record["score"])


_CATEGORY_COLUMNS = tuple(categories.c)
_tracer = trace.get_tracer(__name__)


class SqlCategoryRepository:
    def __init__(self, executor: Executor) -> None:
        self._x = executor

    async def all(self) -> list[Category]:
        rows = (
            await self._x.execute(sa.select(*_CATEGORY_COLUMNS).order_by(categories.c.path))
        ).all()
        return [category_of(row._mapping) for row in rows]

    async def get(self, category_id: UUID, *, for_update: bool = False) -> Category | None:
        query = sa.select(*_CATEGORY_COLUMNS).where(categories.c.id == category_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._x.execute(query)).first()
        return category_of(row._mapping) if row is not None else None

    async def add(self, category: Category) -> Category:
        try:
            row = (
                await self._x.execute(
                    sa.insert(categories)
                    .values(
                        id=category.id,
                        name=category.name,
                        slug=category.slug,
                        parent_id=category.parent_id,
                        path=category.path,
                    )
                    .returning(*_CATEGORY_COLUMNS)
                )
            ).one()
        except IntegrityError as exc:
            raise self._translated(exc, category.slug) from exc
        return category_of(row._mapping)

    async def update(
        self, category_id: UUID, *, name: str, slug: str, parent_id: UUID | None, path: str
    ) -> Category:
        try:
            old_path = (
                await self._x.execute(
                    sa.select(categories.c.path).where(categories.c.id == category_id)
                )
            ).scalar_one()
            if old_path != path:
                # The subtree moves with it: every path under the old prefix is re-rooted.
                await self._x.execute(
                    sa.update(categories)
                    .where(categories.c.path.startswith(old_path))
                    .values(
                        path=sa.literal(path) + sa.func.substr(categories.c.path, len(old_path) + 1)
                    )
                )
            row = (
                await self._x.execute(
                    sa.update(categories)
                    .where(categories.c.id == category_id)
                    .values(name=name, slug=slug, parent_id=parent_id, updated_at=sa.func.now())
                    .returning(*_CATEGORY_COLUMNS)
                )
            ).one()
        except IntegrityError as exc:
            raise self._translated(exc, slug) from exc
        return category_of(row._mapping)

    async def delete(self, category_id: UUID) -> None:
        await self._x.execute(sa.delete(categories).where(categories.c.id == category_id))

    async def has_children(self, category_id: UUID) -> bool:
        query = sa.select(sa.exists().where(categories.c.parent_id == category_id))
        return bool((await self._x.execute(query)).scalar())

    async def lock_tree(self) -> None:
        await self._x.execute(sa.select(sa.func.pg_advisory_xact_lock(_TREE_LOCK_KEY)))

    @staticmethod
    def _translated(exc: IntegrityError, slug: str) -> Exception:
        constraint = _constraint(exc)
        if constraint == "uq_categories_slug":
            return SlugTaken(slug)
        if constraint == "fk_categories_parent_id_categories":
            return ParentCategoryNotFound()
        return exc


class WordAlternatives:
    """The known words that stand in for a search's unknown words, as the vocabulary
    (``search_words``) last gave them: kept a minute, for the 10,000 words last asked.

    A search of words already looked up then costs no round trip before the listing.
    Being a minute late is harmless: the corrected text always keeps the word itself,
    so a word that became known is still matched, only OR-ed with its look-alikes
    until its entry expires.
    """

    def __init__(self, *, size: int = 10_000, seconds: float = 60.0) -> None:
        self._known: TTLCache[str, tuple[str, ...]] = TTLCache(maxsize=size, ttl=seconds)

    def missing(self, words: Iterable[str]) -> list[str]:
        return sorted({word for word in words if word not in self._known})

    def remember(self, word: str, alternatives: Sequence[str]) -> None:
        self._known[word] = tuple(alternatives)

    def of(self, word: str) -> tuple[str, ...]:
        return self._known.get(word, ())


class SqlProductRepository:
    def __init__(self, executor: Executor, alternatives: WordAlternatives | None = None) -> None:
        self._x = executor
        self._alternatives = alternatives if alternatives is not None else WordAlternatives()

    async def add(self, product: NewProduct, *, product_id: UUID) -> Product:
        try:
            row = (
                await self._x.execute(
                    sa.insert(products)
                    .values(
                        id=product_id,
                        sku=product.sku,
                        name=product.name,
                        description=product.description,
                        price_amount=product.price.amount,
                        currency=product.price.currency,
                        category_id=product.category_id,
                        attributes=product.attributes,
                        image_urls=list(product.image_urls),
                        on_hand=product.stock,
                        reserved=0,
                    )
                    .returning(*PRODUCT_COLUMNS)
                )
            ).one()
        except IntegrityError as exc:
            raise self._translated(exc, product.sku) from exc
        return product_of(row)

    async def get(self, product_id: UUID) -> Product | None:
        row = (
            await self._x.execute(
                sa.select(*PRODUCT_COLUMNS).where(
                    products.c.id == product_id, products.c.deleted_at.is_(None)
                )
            )
        ).first()
        return product_of(row) if row is not None else None

    async def update(self, product_id: UUID, changes: Mapping[str, Any]) -> Product | None:
        values: dict[str, Any] = {"updated_at": sa.func.now()}
        for name, value in changes.items():
            if name == "price":
                assert isinstance(value, Money)
                values["price_amount"], values["currency"] = value.amount, value.currency
            elif name == "image_urls":
                values[name] = list(value)
            else:
                values[name] = value
        try:
            row = (
                await self._x.execute(
                    sa.update(products)
                    .where(products.c.id == product_id, products.c.deleted_at.is_(None))
                    .values(**values)
                    .returning(*PRODUCT_COLUMNS)
                )
            ).first()
        except IntegrityError as exc:
            raise self._translated(exc, "") from exc
        return product_of(row) if row is not None else None

    async def soft_delete(self, product_id: UUID) -> Product | None:
        row = (
            await self._x.execute(
                sa.update(products)
                .where(products.c.id == product_id, products.c.deleted_at.is_(None))
                .values(deleted_at=sa.func.now(), updated_at=sa.func.now())
                .returning(*PRODUCT_COLUMNS)
            )
        ).first()
        return product_of(row) if row is not None else None

    async def set_on_hand(self, product_id: UUID, quantity: int) -> Product | None:
        row = (
            await self._x.execute(
                sa.update(products)
                .where(
                    products.c.id == product_id,
                    products.c.deleted_at.is_(None),
                    products.c.reserved <= quantity,
                )
                .values(on_hand=quantity, updated_at=sa.func.now())
                .returning(*PRODUCT_COLUMNS)
            )
        ).first()
        return product_of(row) if row is not None else None

    async def page(self, query: ProductQuery) -> list[ListedProduct]:
        statement = await self.listing(query)
        if statement is None:
            return []  # no such category: nothing is in it
        return [listed_product(row) for row in await self._fetch(statement)]

    async def listing(self, query: ProductQuery) -> Statement | None:
        """The listing's statement for ``query``, after the reads it needs first: the
        ids of its category's subtree, the alternatives of its unknown words. None when
        the category does not exist."""
        category_ids: list[UUID] | None = None
        if query.category is not None:
            category_ids = [
                row["id"] for row in await self._fetch(subtree_statement(query.category))
            ]
            if not category_ids:
                return None
        corrected = await self._corrected(query.text) if query.text else None
        return listing_statement(query, category_ids, corrected)

    async def _corrected(self, text: str) -> str | None:
        """The typo-corrected search text of ``text``, if a word of it is unknown and
        close to known words (``product_search.ALTERNATIVES``)."""
        words = words_to_correct(text)
        if words is None:
            return None
        missing = self._alternatives.missing(words)
        if missing:
            found: dict[str, list[str]] = {word: [] for word in missing}
            for row in await self._fetch(Statement(ALTERNATIVES, (missing,))):
                found[row["word"]].append(row["alternative"])
            for word, alternatives in found.items():
                self._alternatives.remember(word, alternatives)
        return corrected_text(words, {word: self._alternatives.of(word) for word in words})

    async def _driver(self) -> Any:
        """The asyncpg connection under the executor, so a read in a transaction sees it."""
        connection = await self._x.connection() if isinstance(self._x, AsyncSession) else self._x
        return (await connection.get_raw_connection()).driver_connection

    async def _fetch(self, statement: Statement) -> list[Any]:
        """``statement``'s rows (asyncpg records), in a span like the SQLAlchemy
        instrumentation's."""
        return await fetch(await self._driver(), statement)

    async def batch(self, ids: Sequence[UUID]) -> list[Product]:
        if not ids:
            return []
        rows = (
            await self._x.execute(sa.select(*PRODUCT_COLUMNS).where(products.c.id.in_(ids)))
        ).all()
        return [product_of(row) for row in rows]

    async def has_live_products_in(self, category_id: UUID) -> bool:
        query = sa.select(
            sa.exists().where(
                products.c.category_id == category_id, products.c.deleted_at.is_(None)
            )
        )
        return bool((await self._x.execute(query)).scalar())

    @staticmethod
    def _translated(exc: IntegrityError, sku: str) -> Exception:
        constraint = _constraint(exc)
        if constraint == "uq_products_sku_live":
            return SkuTaken(sku)
        if constraint == "fk_products_category_id_categories":
            return ProductCategoryNotFound()
        return exc


async def fetch(driver: Any, statement: Statement) -> list[Any]:
    """``statement``'s rows on the asyncpg connection ``driver``; a client span like the
    SQLAlchemy instrumentation's when the trace is recorded."""
    rows: list[Any]
    if not trace.get_current_span().is_recording():
        # Nothing records this trace (no exporter, or not sampled): no span at all.
        rows = await driver.fetch(statement.sql, *statement.args)
        return rows
    with _tracer.start_as_current_span(
        statement.sql.split(" ", 1)[0],
        kind=trace.SpanKind.CLIENT,
        attributes={"db.system": "postgresql", "db.statement": statement.sql},
    ):
        rows = await driver.fetch(statement.sql, *statement.args)
    return rows


class _ReadOnly:
    """Stands for the SQLAlchemy executor a read-only repository does not have: every
    method it inherits that would write (or read through SQLAlchemy) raises."""

    async def execute(self, *_: object, **__: object) -> Any:
        raise RuntimeError("a read-only unit of work only reads, in SQL text")

    async def connection(self) -> Any:
        raise RuntimeError("a read-only unit of work has no SQLAlchemy connection")


class SqlProductReads(SqlProductRepository):
    """The read-only unit of work's products: every read SQL text on one asyncpg
    connection (outside a transaction: each statement is its own)."""

    def __init__(self, driver: Any, alternatives: WordAlternatives) -> None:
        super().__init__(_ReadOnly(), alternatives)  # type: ignore[arg-type]
        self._asyncpg = driver

    async def _driver(self) -> Any:
        return self._asyncpg

    async def get(self, product_id: UUID) -> Product | None:
        rows = await self._fetch(Statement(PRODUCT_BY_ID, (product_id,)))
        return product_of_read(rows[0]) if rows else None

    async def batch(self, ids: Sequence[UUID]) -> list[Product]:
        if not ids:
            return []
        return [
            product_of_read(row) for row in await self._fetch(Statement(PRODUCTS_BY_IDS, (ids,)))
        ]


class SqlCategoryReads(SqlCategoryRepository):
    """The read-only unit of work's categories: the tree as SQL text."""

    def __init__(self, driver: Any) -> None:
        super().__init__(_ReadOnly())  # type: ignore[arg-type]
        self._asyncpg = driver

    async def all(self) -> list[Category]:
        rows = await fetch(self._asyncpg, Statement(CATEGORIES_BY_PATH, ()))
        return [category_of(row) for row in rows]
