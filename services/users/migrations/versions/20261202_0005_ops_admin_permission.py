"""the ops:admin permission: the dead-letter list of the ops service, granted to admin

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERMISSION = "ops:admin"


def upgrade() -> None:
    permissions = sa.table("permissions", sa.column("name"), sa.column("description"))
    grants = sa.table("role_permissions", sa.column("role"), sa.column("permission"))
    op.bulk_insert(
        permissions,
        [{"name": PERMISSION, "description": "See and replay the dead letters of every service"}],
    )
    op.bulk_insert(grants, [{"role": "admin", "permission": PERMISSION}])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM role_permissions WHERE permission = :p").bindparams(p=PERMISSION))
    op.execute(sa.text("DELETE FROM permissions WHERE name = :p").bindparams(p=PERMISSION))
