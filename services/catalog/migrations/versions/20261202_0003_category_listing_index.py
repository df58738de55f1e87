"""category listings newest first: (category_id, created_at DESC, id DESC) of live products

Replaces ix_products_category_id (the new index leads with category_id, so it
serves every lookup the old one did): a category's newest products are read in
order and the scan stops at the page's end, instead of reading every product of
the category and sorting them (176 at 100,000 products, ten times that at
1,000,000).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 14:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_products_category_id_created_at_id",
        "products",
        ["category_id", sa.text("created_at DESC"), sa.text("id DESC")],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_products_category_id",
        table_name="products",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.create_index(
        "ix_products_category_id",
        "products",
        ["category_id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_products_category_id_created_at_id",
        table_name="products",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
