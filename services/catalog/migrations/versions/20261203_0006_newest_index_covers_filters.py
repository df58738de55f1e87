"""the newest-first index carries the filter columns: (created_at DESC, id DESC) INCLUDE (category_id, price_amount, on_hand, reserved)

A filtered listing newest first (category subtree, price range, in stock,
attributes) walks ix_products_created_at_id until a page's worth of products
pass its conditions: about 8,600 products for 20 at 100,000 (electronics,
50.00-200.00, black), each read from the table. With the category, price and
stock in the index, the walk filters in the index alone (an index-only scan)
and reads from the table only the products that pass those conditions, to
check their attributes and to return them (ADR 0015 amendment 4).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = [sa.literal_column("created_at DESC"), sa.literal_column("id DESC")]
_LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.drop_index("ix_products_created_at_id", table_name="products", postgresql_where=_LIVE)
    op.create_index(
        "ix_products_created_at_id",
        "products",
        _KEY,
        unique=False,
        postgresql_include=["category_id", "price_amount", "on_hand", "reserved"],
        postgresql_where=_LIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_products_created_at_id", table_name="products", postgresql_where=_LIVE)
    op.create_index(
        "ix_products_created_at_id", "products", _KEY, unique=False, postgresql_where=_LIVE
    )
