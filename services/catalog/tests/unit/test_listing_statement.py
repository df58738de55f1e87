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
    corrected_text,
    listing_statement,
    subtree_statement,
    words_to_correct,
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


def test_only_plain_words_are_typo_corrected() -> None:
    assert words_to_correct("Vellium headphnes") == ("vellium", "headphnes")
    assert words_to_correct("  écouteurs  ") == ("écouteurs",)
    # websearch syntax keeps its meaning: phrases, exclusions, "or"
    assert words_to_correct('"noise cancelling"') is None
    assert words_to_correct("headphones -wired") is None
    assert words_to_correct("headphones or speakers") is None
    # digits, punctuation, and too many words are searched as written
    assert words_to_correct("x200 headphones") is None
    assert words_to_correct("head-phones") is None
    assert words_to_correct(" ".join(["word"] * 9)) is None
    assert words_to_correct("   ") is None


def test_the_corrected_text_keeps_every_word_and_or_s_in_its_alternatives() -> None:
    words = ("vellium", "headphnes")

    assert corrected_text(words, {}) is None
    assert corrected_text(words, {"vellium": ()}) is None
    assert (
        corrected_text(words, {"headphnes": ("headphones", "headphone")})
        == "vellium & (headphnes | headphones | headphone)"
    )


def test_corrected_text_is_a_parameter_of_to_tsquery() -> None:
    query = ProductQuery(text="headphnes", sort=Sort.RELEVANCE)

    as_written = listing_statement(query, None)
    corrected = listing_statement(query, None, "(headphnes | headphones)")

    assert "websearch_to_tsquery('english'::regconfig, $1::text)" in as_written.sql
    assert "to_tsquery('english'::regconfig, $1::text)" in corrected.sql
    assert "websearch_to_tsquery" not in corrected.sql
    assert corrected.args[0] == "(headphnes | headphones)"
    assert "headphones" not in corrected.sql


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
