"""Tables of the catalogue service (the single source for Alembic autogenerate).

The schema every part of the service relies on (migration 0001; ADR 0014):

* ``categories``: an adjacency list (``parent_id``) with a materialised ``path``
  of the ids from the root down (``/<hex>/<hex>/``), so a subtree is one prefix
  match and the whole tree one ordered read.
* ``products``: money in integer minor units with its currency, ``attributes``
  as JSONB, stock on hand and reserved (``available = on_hand - reserved``),
  a generated ``search`` tsvector (name weight A, description weight B), and
  soft deletion (``deleted_at``). Every listing index is partial on
  ``deleted_at IS NULL``: deleted rows cost the listings nothing.
* ``search_words``: the vocabulary of the products, for typo tolerance
  (migration 0004).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID

from emporium_kit.messaging.tables import define_inbox_table, define_outbox_table

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TIMESTAMP = sa.DateTime(timezone=True)

# The text search configuration of the generated column and of every query on it.
SEARCH_CONFIG = "english"

categories = sa.Table(
    "categories",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("slug", sa.Text, nullable=False, unique=True),
    sa.Column(
        "parent_id",
        UUID(as_uuid=True),
        sa.ForeignKey("categories.id", ondelete="RESTRICT"),
        nullable=True,
    ),
    # The ids from the root down to this category, each as 32 hex digits between
    # slashes ("/<root>/<child>/"): a subtree is every path with this prefix.
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
)
sa.Index("ix_categories_parent_id", categories.c.parent_id)
sa.Index("ix_categories_path", categories.c.path, postgresql_ops={"path": "text_pattern_ops"})

products = sa.Table(
    "products",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=sa.text("''")),
    sa.Column("price_amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    # Required by the API; SET NULL only so that deleting a category that holds
    # nothing but soft-deleted products is possible (a live product blocks it).
    sa.Column(
        "category_id",
        UUID(as_uuid=True),
        sa.ForeignKey("categories.id", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("attributes", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("image_urls", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")),
    sa.Column("on_hand", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("reserved", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column(
        "search",
        TSVECTOR,
        sa.Computed(
            f"setweight(to_tsvector('{SEARCH_CONFIG}'::regconfig, name), 'A') || "
            f"setweight(to_tsvector('{SEARCH_CONFIG}'::regconfig, description), 'B')",
            persisted=True,
        ),
        nullable=False,
    ),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("deleted_at", TIMESTAMP, nullable=True),
    sa.CheckConstraint("price_amount >= 0", name="price_amount_not_negative"),
    sa.CheckConstraint(
        "on_hand >= 0 AND reserved >= 0 AND reserved <= on_hand", name="stock_consistent"
    ),
)
_LIVE = products.c.deleted_at.is_(None)
# A SKU names one live product; a deleted product's SKU may be reused (ADR 0014).
sa.Index("uq_products_sku_live", products.c.sku, unique=True, postgresql_where=_LIVE)
# Full-text search and attribute containment. Without GIN's
# pending list (fastupdate off): an insert updates the index at once, so the planner
# never sees a backlog of unmerged entries, costs these indexes high and scans the
# table instead until a vacuum (a catalogue is read far more than it is written).
_GIN = {"fastupdate": "off"}
sa.Index(
    "ix_products_search",
    products.c.search,
    postgresql_using="gin",
    postgresql_where=_LIVE,
    postgresql_with=_GIN,
)
sa.Index(
    "ix_products_attributes",
    products.c.attributes,
    postgresql_using="gin",
    postgresql_ops={"attributes": "jsonb_path_ops"},
    postgresql_where=_LIVE,
    postgresql_with=_GIN,
)
# The keyset sorts of the listing (price_desc reads the price index backwards).
sa.Index(
    "ix_products_created_at_id",
    products.c.created_at.desc(),
    products.c.id.desc(),
    # A filtered listing newest first checks these in the index alone (migration 0006).
    postgresql_include=["category_id", "price_amount", "on_hand", "reserved"],
    postgresql_where=_LIVE,
)
sa.Index(
    "ix_products_price_amount_id", products.c.price_amount, products.c.id, postgresql_where=_LIVE
)
sa.Index("ix_products_name_id", products.c.name, products.c.id, postgresql_where=_LIVE)
# A category's products newest first (migration 0003); it serves category_id lookups too.
sa.Index(
    "ix_products_category_id_created_at_id",
    products.c.category_id,
    products.c.created_at.desc(),
    products.c.id.desc(),
    postgresql_where=_LIVE,
)

# The words products use (lowercased ``simple`` tokens of 3 to 40 letters), kept by
# the triggers of migration 0004: a query's unknown word is looked up here by trigram
# similarity and replaced by the known words it is close to (typo tolerance).
search_words = sa.Table(
    "search_words",
    metadata,
    sa.Column("word", sa.Text, primary_key=True),
)
sa.Index(
    "ix_search_words_trgm",
    search_words.c.word,
    postgresql_using="gin",
    postgresql_ops={"word": "gin_trgm_ops"},
)

outbox = define_outbox_table(metadata)
inbox = define_inbox_table(metadata)
