"""Tables of the ops service (the single source for Alembic autogenerate)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

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

# One row per dead letter of any service, keyed by the dead letter's own id, so
# a redelivered dead letter is stored once. Unbounded text: what a producer sent
# is kept whole rather than refused.
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("queue", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("message_id", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_failed_at", TIMESTAMP, nullable=False),
    sa.Column("last_failed_at", TIMESTAMP, nullable=False),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("received_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("replayed_at", TIMESTAMP, nullable=True),
    sa.Column("replay_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.CheckConstraint("kind IN ('job', 'event')", name="kind"),
)
# The listing, newest first, and the same within one queue (keyset pagination).
sa.Index(
    "ix_dead_letters_received_at_id",
    dead_letters.c.received_at.desc(),
    dead_letters.c.id.desc(),
)
sa.Index(
    "ix_dead_letters_queue_received_at_id",
    dead_letters.c.queue,
    dead_letters.c.received_at.desc(),
    dead_letters.c.id.desc(),
)
