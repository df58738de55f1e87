"""outbox destination: the one outbox carries jobs as well as events

A row is an event (``events``, the default, for every existing row) or a job
(``jobs``) that the relay publishes to the jobs exchange (ADR 0012).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "outbox",
        sa.Column("destination", sa.Text(), server_default=sa.text("'events'"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("outbox", "destination")
