"""search words: the catalogue's vocabulary, for typo tolerance through the full-text index

A typo used to be matched by trigram word similarity against every product's
name (``q <% name`` on ix_products_name_trgm, scored by ``word_similarity``),
which cost three quarters of a text search: 25 ms of 35 for "headphones" at
1,000,000 products. Now a word of the query that the catalogue does not know is
looked up in this small table of the words products use (trigram GIN index,
a few thousand rows) and replaced by the known words it is close to, and the
search itself is the full-text index alone (ADR 0015, amendment 2).

``search_words`` is kept by triggers, so every writer (the service, the seed's
COPY, a script) keeps it whole: one statement-level trigger per insert
statement (a transition table: one INSERT for a COPY of thousands of rows) and a
row-level trigger on updates that change a name or a description (stock
updates, the hot path of reservations, do not fire it). Words are lowercased
tokens of the ``simple`` configuration of 3 to 40 letters, inserted in sorted
order (concurrent writers take the same words' locks in the same order). A
deleted product's words stay: a typo expanded to a word no live product has
only matches nothing.

``search_word_alternatives(words)`` gives, for each word the vocabulary does not
hold (of 3 to 40 characters), the three known words most similar to it, of
trigram similarity at least 0.45 ("headphones" is 0.62 from "headphnes";
pg_trgm's default of 0.3 lets in unrelated words that share a few trigrams).
It reads the trigram index, never the table: the planner costs the GIN index
above a scan even for 20,000 words, and the scan computes the similarity of
every word (80 ms a word at 20,000 words, against 1 ms through the index), so
the function plans with ``enable_seqscan`` off.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 19:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The words of the products in {rows} (a FROM item with name and description as p).
_WORDS_OF = """
    SELECT DISTINCT word
    FROM {rows},
         unnest(tsvector_to_array(to_tsvector('simple', p.name || ' ' || p.description))) AS word
    WHERE word ~ '^[[:alpha:]]{{3,40}}$'
    ORDER BY word
"""


def upgrade() -> None:
    op.create_table(
        "search_words",
        sa.Column("word", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("word", name=op.f("pk_search_words")),
    )
    op.create_index(
        "ix_search_words_trgm",
        "search_words",
        ["word"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"word": "gin_trgm_ops"},
    )
    op.execute(
        f"""
        CREATE FUNCTION remember_inserted_product_words() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO search_words (word) {_WORDS_OF.format(rows="inserted AS p")}
            ON CONFLICT DO NOTHING;
            RETURN NULL;
        END $$
        """
    )
    updated = "(SELECT NEW.name, NEW.description) AS p (name, description)"
    op.execute(
        f"""
        CREATE FUNCTION remember_updated_product_words() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO search_words (word) {_WORDS_OF.format(rows=updated)}
            ON CONFLICT DO NOTHING;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER products_remember_inserted_words
        AFTER INSERT ON products REFERENCING NEW TABLE AS inserted
        FOR EACH STATEMENT EXECUTE FUNCTION remember_inserted_product_words()
        """
    )
    op.execute(
        """
        CREATE TRIGGER products_remember_updated_words
        AFTER UPDATE OF name, description ON products
        FOR EACH ROW
        WHEN (OLD.name IS DISTINCT FROM NEW.name
              OR OLD.description IS DISTINCT FROM NEW.description)
        EXECUTE FUNCTION remember_updated_product_words()
        """
    )
    op.execute(
        """
        CREATE FUNCTION search_word_alternatives(words text[])
        RETURNS TABLE (word text, alternative text)
        LANGUAGE sql STABLE PARALLEL SAFE
        SET enable_seqscan = off
        SET pg_trgm.similarity_threshold = 0.45
        AS $$
            SELECT q.word, a.word
            FROM unnest(words) AS q(word)
            CROSS JOIN LATERAL (
                SELECT s.word FROM search_words s
                WHERE s.word % q.word
                ORDER BY similarity(s.word, q.word) DESC, s.word
                LIMIT 3
            ) AS a
            WHERE length(q.word) BETWEEN 3 AND 40
              AND NOT EXISTS (SELECT FROM search_words k WHERE k.word = q.word)
        $$
        """
    )
    # The words of the products already there.
    op.execute(
        f"INSERT INTO search_words (word) {_WORDS_OF.format(rows='products AS p')} "
        "ON CONFLICT DO NOTHING"
    )
    op.execute("ANALYZE search_words")
    op.drop_index(
        "ix_products_name_trgm",
        table_name="products",
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.create_index(
        "ix_products_name_trgm",
        "products",
        ["name"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
        postgresql_where=sa.text("deleted_at IS NULL"),
        postgresql_with={"fastupdate": "off"},
    )
    op.execute("DROP TRIGGER products_remember_updated_words ON products")
    op.execute("DROP TRIGGER products_remember_inserted_words ON products")
    op.execute("DROP FUNCTION search_word_alternatives(text[])")
    op.execute("DROP FUNCTION remember_updated_product_words()")
    op.execute("DROP FUNCTION remember_inserted_product_words()")
    op.drop_index("ix_search_words_trgm", table_name="search_words")
    op.drop_table("search_words")
