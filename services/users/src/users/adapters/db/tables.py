"""Tables of the users service (the single source for Alembic autogenerate)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import INET, UUID

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

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    # Compared case-insensitively: the unique index is on the normalised form.
    sa.Column("email_normalized", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(100), nullable=False),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(32), nullable=True),
    # Bumped on role change and password reset: older access tokens stop working.
    sa.Column("token_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
)
sa.Index("ix_users_created_at_id", users.c.created_at.desc(), users.c.id.desc())

roles = sa.Table(
    "roles",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("description", sa.String(200), nullable=False),
)

permissions = sa.Table(
    "permissions",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("description", sa.String(200), nullable=False),
)

role_permissions = sa.Table(
    "role_permissions",
    metadata,
    sa.Column("role", sa.ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "permission", sa.ForeignKey("permissions.name", ondelete="CASCADE"), primary_key=True
    ),
)

user_roles = sa.Table(
    "user_roles",
    metadata,
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.ForeignKey("roles.name"), primary_key=True),
)
sa.Index("ix_user_roles_role", user_roles.c.role)

# One session per login: the family of refresh tokens that login started.
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("last_used_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("expires_at", TIMESTAMP, nullable=False),
    sa.Column("user_agent", sa.String(512), nullable=True),
    sa.Column("ip", INET, nullable=True),
    sa.Column("revoked_at", TIMESTAMP, nullable=True),
    sa.Column("revoked_reason", sa.String(50), nullable=True),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    # SHA-256 of the opaque token: a database leak yields no usable token.
    sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
    sa.Column(
        "session_id",
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("issued_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("used_at", TIMESTAMP, nullable=True),
)

password_reset_tokens = sa.Table(
    "password_reset_tokens",
    metadata,
    sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("expires_at", TIMESTAMP, nullable=False),
    sa.Column("used_at", TIMESTAMP, nullable=True),
)

outbox = define_outbox_table(metadata)
inbox = define_inbox_table(metadata)
