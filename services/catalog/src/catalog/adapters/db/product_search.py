"""The SQL of the product listing: one statement per request, every shape served by an index.

``listing_query`` builds it from a :class:`~catalog.domain.listing.ProductQuery`.
Every shape reads only live rows (``deleted_at IS NULL``), so the planner can use
the partial indexes of migration 0001 (``tests/integration/test_listing_plans.py``
checks each shape's plan on 20,000 rows):

* text (``q``): ``search @@ websearch_to_tsquery('english', q) OR q <% name``, a
  BitmapOr of ``ix_products_search`` (GIN, full text) and
  ``ix_products_name_trgm`` (GIN, trigrams: "headphnes" still finds
  "Headphones", word similarity at pg_trgm's threshold; for text of 3 to 40
  characters, see ``TYPO_TOLERANT_LENGTHS``, else the full text alone), ranked by
  ``ts_rank(search, query) + word_similarity(q, name)``;
* ``category``: ``category_id IN (the ids whose path starts with the category's)``,
  through ``ix_products_category_id``;
* ``attr.<name>=<value>``: ``attributes @> '{"name": value}'`` through
  ``ix_products_attributes`` (GIN, ``jsonb_path_ops``); a value that reads as a
  number or a boolean also matches that JSON type (``OR``-ed containments);
* ``min_price``/``max_price``, ``in_stock``: plain conditions;
* the sorts as keyset scans: ``newest`` on ``ix_products_created_at_id``,
  ``price_asc``/``price_desc`` on ``ix_products_price_amount_id`` (backwards for
  desc), ``name`` on ``ix_products_name_id``; ``relevance`` sorts the matches by
  score (a text search's matches are few). The page after a position is the
  row-value comparison ``(key, id) > / < (last key, last id)``, so inserts never
  shift a page: every row that exists throughout a walk is seen exactly once.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, REGCONFIG

from catalog.adapters.db.tables import SEARCH_CONFIG, categories, products
from catalog.domain.listing import ProductQuery, Sort

_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_MAX_SAFE_INTEGER = 2**53

PRODUCT_COLUMNS = tuple(column for column in products.c if column.name != "search")

TYPO_TOLERANT_LENGTHS = range(3, 41)
"""Text of these lengths is also matched by trigram word similarity. Shorter text has
too few trigrams to tell a typo from another word (and would match most names);
longer text is a phrase whose trigram search reads hundreds of posting lists, and its
words are matched by the full-text search already."""


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


def _subtree_ids(category: str) -> sa.Select[Any]:
    """The ids of the category named by id or slug and of all its descendants."""
    root = categories.alias("root")
    try:
        by_id: sa.ColumnElement[bool] | None = root.c.id == uuid.UUID(category)
    except ValueError:
        by_id = None
    named = root.c.slug == category
    root_path = (
        sa.select(root.c.path)
        .where(sa.or_(by_id, named) if by_id is not None else named)
        .limit(1)
        .scalar_subquery()
    )
    return sa.select(categories.c.id).where(categories.c.path.startswith(root_path))


def text_search(text: str) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[float]]:
    """The match condition of ``q`` and its relevance score."""
    tsquery = sa.func.websearch_to_tsquery(sa.cast(SEARCH_CONFIG, REGCONFIG), text)
    full_text = products.c.search.bool_op("@@")(tsquery)
    typo_tolerant = sa.literal(text, sa.Text).bool_op("<%")(products.c.name)
    score = sa.cast(
        sa.func.ts_rank(products.c.search, tsquery)
        + sa.func.word_similarity(text, products.c.name),
        sa.Double,
    )
    return sa.or_(full_text, typo_tolerant), score


def listing_query(query: ProductQuery) -> sa.Select[Any]:
    """The listing's one statement: ``query.limit`` rows (ask for one more to see if
    another page follows), with a ``score`` column (NULL without text)."""
    conditions: list[sa.ColumnElement[bool]] = [products.c.deleted_at.is_(None)]
    score: sa.ColumnElement[Any] = sa.null()
    if query.text:
        matches, score = text_search(query.text)
        conditions.append(matches)
    if query.category is not None:
        conditions.append(products.c.category_id.in_(_subtree_ids(query.category)))
    if query.min_price is not None:
        conditions.append(products.c.price_amount >= query.min_price)
    if query.max_price is not None:
        conditions.append(products.c.price_amount <= query.max_price)
    if query.in_stock:
        conditions.append(products.c.on_hand > products.c.reserved)
    for name, raw in query.attributes:
        conditions.append(
            sa.or_(
                *(
                    products.c.attributes.op("@>")(sa.cast({name: value}, JSONB))
                    for value in _attribute_values(raw)
                )
            )
        )

    sort = query.sort if (query.text or query.sort is not Sort.RELEVANCE) else Sort.NEWEST
    key: sa.ColumnElement[Any]
    if sort is Sort.RELEVANCE:
        key, descending = score, True
    elif sort is Sort.NEWEST:
        key, descending = products.c.created_at, True
    elif sort is Sort.PRICE_ASC:
        key, descending = products.c.price_amount, False
    elif sort is Sort.PRICE_DESC:
        key, descending = products.c.price_amount, True
    else:
        key, descending = products.c.name, False
    if query.after is not None:
        position = sa.tuple_(key, products.c.id)
        last = sa.tuple_(sa.literal(query.after.value, key.type), sa.literal(query.after.id))
        conditions.append(position < last if descending else position > last)
    order = (key.desc(), products.c.id.desc()) if descending else (key.asc(), products.c.id.asc())
    return (
        sa.select(*PRODUCT_COLUMNS, score.label("score"))
        .where(*conditions)
        .order_by(*order)
        .limit(query.limit)
    )
