"""stock reservations: one per order, with its lines

A reservation holds every line of an order or none (status reserved), until the
order is paid (committed) or cancelled (released); a placement that could not be
reserved is kept as rejected, its refused lines with their reason. Tables are
defined in catalog.adapters.db.reservations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 14:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('stock_reservations',
    sa.Column('order_id', sa.UUID(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('reserved', 'committed', 'released', 'rejected')", name=op.f('ck_stock_reservations_status')),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_stock_reservations'))
    )
    op.create_table('stock_reservation_lines',
    sa.Column('order_id', sa.UUID(), nullable=False),
    sa.Column('product_id', sa.UUID(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('available', sa.Integer(), nullable=True),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_stock_reservation_lines_quantity_positive')),
    sa.ForeignKeyConstraint(['order_id'], ['stock_reservations.order_id'], name=op.f('fk_stock_reservation_lines_order_id_stock_reservations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('order_id', 'product_id', name=op.f('pk_stock_reservation_lines'))
    )
    op.create_index('ix_stock_reservation_lines_product_id', 'stock_reservation_lines', ['product_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_stock_reservation_lines_product_id', table_name='stock_reservation_lines')
    op.drop_table('stock_reservation_lines')
    op.drop_table('stock_reservations')
