"""The listing's SQL text holds only the module's own fragments: every value a request
gives travels as a parameter (the statements are run as text on asyncpg)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest

from catalog.adapters.db.product_search import (
    SUBTREE_BY_ID_OR_SLUG,
    SUBTREE_BY_SLUG,
    listing_statement,
    subtree_statement,
)
from catalog.domain.listing import Position, ProductQuery, Sort

HOSTILE = "x'); DROP TABLE products; --"


def test_request_values_are_parameters_never_sql_text() -> None:
    after = Position(Sort.NAME, HOSTILE, uuid.uuid4())
    query = ProductQuery(
        text=HOSTILE,
        min_price=5,
        max_price=77_777,
        attributes=((HOSTILE, HOSTILE), ("size", "42")),
        sort=Sort.NAME,
        after=after,
        limit=21,
    )
    ids = [uuid.uuid4(), uuid.uuid4()]

    statement = listing_statement(query, ids)

    assert HOSTILE not in statement.sql
    assert "77777" not in statement.sql
    assert str(ids[0]) not in statement.sql
    assert HOSTILE in statement.args
    assert ids in statement.args
    assert '{"size":42}' in statement.args  # the number the text spells, and the text
    assert '{"size":"42"}' in statement.args
    placeholders = {int(n) for n in re.findall(r"\$(\d+)", statement.sql)}
    assert placeholders == set(range(1, len(statement.args) + 1))


def test_typo_tolerance_only_for_text_of_3_to_40_characters() -> None:
    def has_trigram_match(text: str) -> bool:
        statement = listing_statement(ProductQuery(text=text, sort=Sort.RELEVANCE), None)
        return "<% name" in statement.sql

    assert not has_trigram_match("ab")
    assert has_trigram_match("abc")
    assert has_trigram_match("a" * 40)
    assert not has_trigram_match("a" * 41)


def test_one_category_is_an_equality_and_a_subtree_an_array() -> None:
    one = listing_statement(ProductQuery(), [uuid.uuid4()])
    many = listing_statement(ProductQuery(), [uuid.uuid4(), uuid.uuid4()])

    assert "category_id = $1::uuid" in one.sql
    assert "category_id = ANY($1::uuid[])" in many.sql


@pytest.mark.parametrize(
    ("category", "sql", "args"),
    [
        ("electronics", SUBTREE_BY_SLUG, ("electronics",)),
        (
            "0b70b923-67cf-5ce0-bdef-c4a83acd4f53",
            SUBTREE_BY_ID_OR_SLUG,
            (
                uuid.UUID("0b70b923-67cf-5ce0-bdef-c4a83acd4f53"),
                "0b70b923-67cf-5ce0-bdef-c4a83acd4f53",
            ),
        ),
    ],
)
def test_a_category_is_named_by_slug_or_by_id_or_a_slug_spelt_like_one(
    category: str, sql: str, args: tuple[object, ...]
) -> None:
    statement = subtree_statement(category)

    assert statement.sql == sql
    assert statement.args == args


def test_the_next_page_compares_the_sort_key_and_id_with_the_cursors() -> None:
    when = datetime(2026, 12, 2, tzinfo=UTC)
    last = uuid.uuid4()
    statement = listing_statement(
        ProductQuery(after=Position(Sort.NEWEST, when, last), limit=21), None
    )

    assert "(created_at, id) < ($1::timestamptz, $2::uuid)" in statement.sql
    assert "ORDER BY created_at DESC, id DESC LIMIT $3::integer" in statement.sql
    assert statement.args == (when, last, 21)
