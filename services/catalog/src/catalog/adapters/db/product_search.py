"""The SQL of the hot reads: the product listing and a product by id, as plain SQL text.

``listing_statement`` writes the listing's one statement for a
:class:`~catalog.domain.listing.ProductQuery`; ``subtree_statement`` the lookup
of a ``category`` filter's ids that comes before it. Both are SQL text with
``$n`` parameters, executed on the asyncpg connection of a pooled SQLAlchemy
connection (``repositories.SqlProductReads``): asyncpg prepares each text once per
connection, and no statement is built, compiled or cached by SQLAlchemy on the
request path (that cost about as much CPU as the rest of a request did; the
write path keeps SQLAlchemy Core). Every shape reads only live rows
(``deleted_at IS NULL``), so the planner can use the partial indexes of
migrations 0001 and 0003 (``tests/integration/test_listing_plans.py`` checks
each shape's plan on 20,000 rows):

* text (``q``): ``search @@ websearch_to_tsquery('english', q)`` on
  ``ix_products_search`` (GIN, full text), ranked by ``ts_rank``. Typo
  tolerance: when ``q`` is plain words (:func:`words_to_correct`), each word the
  catalogue does not know is first looked up in ``search_words``, the vocabulary
  of the products (``ALTERNATIVES``: trigram similarity on its own GIN index),
  and the text searched becomes ``to_tsquery`` of every word OR-ed with
  the known words it is close to ("headphnes" is ``headphnes | headphones``);
  the products are still read through the full-text index alone. (Matching
  trigrams against every product's name instead cost three quarters of a search,
  ADR 0015 amendment 2);
* ``category``: the ids of the category and its subtree are looked up first
  (``subtree_statement``, one indexed read of ``categories``) and the listing
  filters ``category_id = ANY($ids)``. Given the ids as a value, the planner
  estimates how many products the subtree holds (a subquery's result is unknown
  to it: it guessed 3 categories for a subtree of 57 and scanned the price index
  instead); one category is ``category_id = $id``, read newest first from
  ``ix_products_category_id_created_at_id``. The catalog's connections plan every
  execution with its parameters (``plan_cache_mode=force_custom_plan``,
  ``CATALOG_DB_PLAN_CACHE_MODE``): a generic plan knows neither the ids nor the
  price range;
* ``attr.<name>=<value>``: ``attributes @> '{"name": value}'`` through
  ``ix_products_attributes`` (GIN, ``jsonb_path_ops``); a value that reads as a
  number or a boolean also matches that JSON type (``OR``-ed containments);
* ``min_price``/``max_price``, ``in_stock``: plain conditions;
* the sorts as keyset scans: ``newest`` on ``ix_products_created_at_id``,
  ``price_asc``/``price_desc`` on ``ix_products_price_amount_id`` (backwards for
  desc), ``name`` on ``ix_products_name_id``; ``relevance`` sorts the matches by
  score. A text search finds its page's ids and keys first and reads only
  those rows whole (a join on the primary key), since every match is sorted
  before the page is known. The page after a position is the
  row-value comparison ``(key, id) > / < (last key, last id)``, so inserts never
  shift a page: every row that exists throughout a walk is seen exactly once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from catalog.adapters.db.tables import SEARCH_CONFIG, products
from catalog.domain.listing import ProductQuery, Sort

_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_MAX_SAFE_INTEGER = 2**53

PRODUCT_COLUMNS = tuple(column for column in products.c if column.name != "search")
"""The product's columns (all but the search vector), for SQLAlchemy statements."""

MAX_CORRECTED_WORDS: Final = 8
"""Text of at most this many words is typo-corrected; longer text is a phrase, whose
words the full-text search matches as they are."""

ALTERNATIVES: Final = "SELECT word, alternative FROM search_word_alternatives($1::text[])"
"""For each word of ``$1`` the catalogue does not know, the known words closest to it
(at most 3, of trigram similarity at least 0.45, through ``ix_search_words_trgm``;
migration 0004 defines the function); none for a known word."""


def words_to_correct(text: str) -> tuple[str, ...] | None:
    """The lowercased words of ``text`` when it is plain words: letters only, at most
    :data:`MAX_CORRECTED_WORDS`, and no ``or`` (so no quotes, ``-``, ``or``, digits or
    punctuation whose meaning ``websearch_to_tsquery`` must keep); else None, and
    the text is searched as written."""
    words = text.split()
    if not 1 <= len(words) <= MAX_CORRECTED_WORDS:
        return None
    if not all(word.isalpha() for word in words):
        return None
    lowered = tuple(word.lower() for word in words)
    return None if "or" in lowered else lowered


def corrected_text(words: Sequence[str], alternatives: Mapping[str, Sequence[str]]) -> str | None:
    """``to_tsquery`` text of ``words`` (all of them), each OR-ed with its
    ``alternatives``; None when no word has any (then ``q`` is searched as written).
    Words are letters only, so none can spell an operator of ``to_tsquery``."""
    if not any(alternatives.get(word) for word in words):
        return None
    terms = []
    for word in words:
        choices = alternatives.get(word, ())
        terms.append(f"({' | '.join((word, *choices))})" if choices else word)
    return " & ".join(terms)


# The columns a product read returns, in product_of's order; attributes as JSON text,
# decoded by orjson (the driver's codec would use the stdlib's json).
SELECTED: Final = (
    "id, sku, name, description, price_amount, currency, category_id, "
    "attributes::text AS attributes, image_urls, on_hand, reserved, created_at, updated_at, "
    "deleted_at"
)

_SELECTED_AS_P: Final = ", ".join(f"p.{column.strip()}" for column in SELECTED.split(","))
""":data:`SELECTED` read from ``products p`` (the page's rows, after a text search)."""

PRODUCT_BY_ID: Final = f"SELECT {SELECTED} FROM products WHERE id = $1 AND deleted_at IS NULL"  # noqa: S608 - constants
"""A live product by id (``pk_products``)."""

PRODUCTS_BY_IDS: Final = f"SELECT {SELECTED} FROM products WHERE id = ANY($1::uuid[])"  # noqa: S608 - constants
"""The products of a list of ids, deleted ones included (``pk_products``)."""

CATEGORIES_BY_PATH: Final = (
    "SELECT id, name, slug, parent_id, path, created_at, updated_at FROM categories ORDER BY path"
)
"""Every category, each after its parent (the materialised path's order)."""

_SUBTREE: Final = (
    "SELECT c.id FROM categories c WHERE c.path LIKE "
    "(SELECT r.path FROM categories r WHERE {root} LIMIT 1) || '%'"
)
SUBTREE_BY_SLUG: Final = _SUBTREE.format(root="r.slug = $1")
SUBTREE_BY_ID_OR_SLUG: Final = _SUBTREE.format(root="(r.id = $1 OR r.slug = $2)")


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL text with ``$n`` parameters, and their values in order."""

    sql: str
    args: tuple[Any, ...]


def subtree_statement(category: str) -> Statement:
    """The ids of the category named by id or slug and of all its descendants (the
    ``path`` prefix through ``ix_categories_path``); none for an unknown category."""
    try:
        category_id = uuid.UUID(category)
    except ValueError:
        return Statement(SUBTREE_BY_SLUG, (category,))
    # A slug may be spelt like a UUID: either may name the category.
    return Statement(SUBTREE_BY_ID_OR_SLUG, (category_id, category))


def _attribute_values(raw: str) -> list[Any]:
    """The JSON values an ``attr.<name>=<raw>`` filter matches: the text itself, and
    the number or boolean it spells (``attr.size=42`` matches 42 and "42")."""
    values: list[Any] = [raw]
    if raw in ("true", "false"):
        values.append(raw == "true")
    elif _NUMBER.fullmatch(raw):
        number = float(raw)
        if abs(number) > _MAX_SAFE_INTEGER:
            return values  # no attribute holds such a number (they are bounded to 2**53)
        if raw.lstrip("-").isdigit():
            values.append(int(raw))
        else:
            values.append(number)
    return values


class _Parameters:
    """Numbers the parameters of a statement as they are added."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


_TSQUERY: Final = f"websearch_to_tsquery('{SEARCH_CONFIG}'::regconfig, {{q}})"
_KEYS: Final = {
    Sort.NEWEST: ("created_at", "timestamptz", True),
    Sort.PRICE_ASC: ("price_amount", "bigint", False),
    Sort.PRICE_DESC: ("price_amount", "bigint", True),
    Sort.NAME: ("name", "text", False),
}


def listing_statement(
    query: ProductQuery, category_ids: Sequence[uuid.UUID] | None, corrected: str | None = None
) -> Statement:
    """The listing's one statement: ``query.limit`` rows (ask for one more to see if
    another page follows), with a ``score`` column (NULL without text).

    ``category_ids`` are the ids of ``query.category``'s subtree
    (:func:`subtree_statement`), or None without a category filter; ``corrected`` is
    the typo-corrected text of ``query.text`` (:func:`corrected_text`), if any.
    """
    param = _Parameters()
    conditions = ["deleted_at IS NULL"]
    score = "NULL::double precision"
    if query.text:
        if corrected is not None:
            tsquery = f"to_tsquery('{SEARCH_CONFIG}'::regconfig, {param(corrected, 'text')})"
        else:
            tsquery = _TSQUERY.format(q=param(query.text, "text"))
        conditions.append(f"search @@ {tsquery}")
        score = f"CAST(ts_rank(search, {tsquery}) AS double precision)"
    if category_ids is not None:
        if len(category_ids) == 1:
            conditions.append(f"category_id = {param(category_ids[0], 'uuid')}")
        else:
            conditions.append(f"category_id = ANY({param(list(category_ids), 'uuid[]')})")
    if query.min_price is not None:
        conditions.append(f"price_amount >= {param(query.min_price, 'bigint')}")
    if query.max_price is not None:
        conditions.append(f"price_amount <= {param(query.max_price, 'bigint')}")
    if query.in_stock:
        conditions.append("on_hand > reserved")
    filtered = (
        category_ids is not None
        or query.min_price is not None
        or query.max_price is not None
        or query.in_stock
    )
    in_table: list[str] = []  # conditions only the table's row can answer
    for name, raw in query.attributes:
        containments = [
            f"attributes @> {param(orjson.dumps({name: value}).decode(), 'jsonb')}"
            for value in _attribute_values(raw)
        ]
        in_table.append(f"({' OR '.join(containments)})")

    sort = query.sort if (query.text or query.sort is not Sort.RELEVANCE) else Sort.NEWEST
    if sort is Sort.RELEVANCE:
        key, key_type, descending = score, "double precision", True
    else:
        key, key_type, descending = _KEYS[sort]
    if query.after is not None:
        last = f"({param(query.after.value, key_type)}, {param(query.after.id, 'uuid')})"
        conditions.append(f"({key}, id) {'<' if descending else '>'} {last}")
    direction = "DESC" if descending else "ASC"
    order = "score" if sort is Sort.RELEVANCE else key
    limit = param(query.limit, "integer")
    # Only this module's constant fragments are written into the text; every value
    # the request gives is a parameter.
    if sort is Sort.NEWEST and not query.text and (filtered or in_table):
        # A filtered listing newest first walks ix_products_created_at_id, which holds
        # the category, price and stock (migration 0006): the walk filters in the index
        # alone and only the products that pass are read from the table, to check their
        # attributes and to be returned, in the walk's order, until the page is full.
        walk = (
            f"SELECT id, created_at FROM products WHERE {' AND '.join(conditions)} "  # noqa: S608
            "ORDER BY created_at DESC, id DESC"
        )
        sql = _whole_rows(
            walk,
            score="NULL::double precision",
            where=in_table,
            order="page.created_at DESC, page.id DESC",
            limit=limit,
        )
        return Statement(sql, tuple(param.values))
    where = " AND ".join([*conditions, *in_table])
    if not query.text:
        sql = (
            f"SELECT {SELECTED}, {score} AS score FROM products WHERE {where} "  # noqa: S608
            f"ORDER BY {order} {direction}, id {direction} LIMIT {limit}"
        )
        return Statement(sql, tuple(param.values))
    # A text search sorts every match before it knows the page (a bitmap of the full
    # text index, then a sort): the page's ids and sort keys are found first, and only
    # its rows are read whole. Written as one statement, PostgreSQL forms each
    # match's whole row (attributes as text, description, image urls) before the
    # sort: half of a search's time at 1,000,000 products (docs/performance.md).
    relevance = sort is Sort.RELEVANCE
    page_order = "score" if relevance else "sort_key"
    sort_key = "" if relevance else f", {key} AS sort_key"
    page = (
        f"SELECT id, {score} AS score{sort_key} FROM products WHERE {where} "  # noqa: S608
        f"ORDER BY {order} {direction}, id {direction} LIMIT {limit}"
    )
    sql = _whole_rows(
        page, score="page.score", order=f"page.{page_order} {direction}, page.id {direction}"
    )
    return Statement(sql, tuple(param.values))


def _whole_rows(
    page: str, *, score: str, order: str, where: Sequence[str] = (), limit: str | None = None
) -> str:
    """The whole rows of the products that ``page`` (a subquery with their ``id``)
    names, read on the primary key as ``p``, in ``order``; ``where``: conditions
    only those rows can answer (the subquery's columns hold none of theirs, so an
    unqualified column is the product's)."""
    filtered = f" WHERE {' AND '.join(where)}" if where else ""
    limited = f" LIMIT {limit}" if limit is not None else ""
    return (
        f"SELECT {_SELECTED_AS_P}, {score} AS score FROM ({page}) AS page "  # noqa: S608
        f"JOIN products p ON p.id = page.id{filtered} ORDER BY {order}{limited}"
    )
