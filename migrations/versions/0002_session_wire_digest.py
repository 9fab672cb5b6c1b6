"""Add sessions.wire_digest: a digest of the list item a session was last written from."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: SQLite does it in place, without copying the table.
    op.add_column("sessions", sa.Column("wire_digest", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("wire_digest")
