"""Create the initial schema: sessions, their history, pulls, writes and sync runs."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "_vxcache_blobs",
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("compression", sa.String(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "_vxcache_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(
        sa.table(
            "_vxcache_changes",
            sa.column("id", sa.Integer),
            sa.column("seq", sa.Integer),
        ),
        [{"id": 1, "seq": 0}],
    )
    op.create_table(
        "artifacts",
        sa.Column("pull_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("content_type", sa.String(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("pulled_at", sa.DateTime(), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pull_id", "name"),
    )
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_artifacts_change_seq"), ["change_seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_artifacts_session_id"), ["session_id"], unique=False
        )

    op.create_table(
        "pulls",
        sa.Column("pull_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("sync_id", sa.Integer(), nullable=True),
        sa.Column("pulled_at", sa.DateTime(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("body_sha256", sa.String(), nullable=False),
        sa.Column("redacted_values", sa.Integer(), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pull_id"),
    )
    with op.batch_alter_table("pulls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pulls_change_seq"), ["change_seq"], unique=False
        )
        batch_op.create_index(
            "ix_pulls_session_pulled", ["session_id", "pulled_at"], unique=False
        )

    op.create_table(
        "session_history",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("hostname", sa.String(), nullable=True),
        sa.Column("username", sa.String(), nullable=True),
        sa.Column("script", sa.String(), nullable=True),
        sa.Column("resource_id", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("valid_from", sa.DateTime(), nullable=False),
        sa.Column("valid_to", sa.DateTime(), nullable=True),
        sa.Column("sync_id", sa.Integer(), nullable=True),
        sa.Column("observed_via", sa.String(), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "version"),
    )
    with op.batch_alter_table("session_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_history_change_seq"), ["change_seq"], unique=False
        )

    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("hostname", sa.String(), nullable=True),
        sa.Column("username", sa.String(), nullable=True),
        sa.Column("script", sa.String(), nullable=True),
        sa.Column("resource_id", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("presence", sa.String(), nullable=False),
        sa.Column("presence_changed_at", sa.DateTime(), nullable=True),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("stale_since", sa.DateTime(), nullable=True),
        sa.Column("pull_wanted", sa.Boolean(), nullable=False),
        sa.Column("last_pull_id", sa.Integer(), nullable=True),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sessions_change_seq"), ["change_seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sessions_presence"), ["presence"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sessions_pull_wanted"), ["pull_wanted"], unique=False
        )

    op.create_table(
        "sync_runs",
        sa.Column("sync_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("listed_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("listed", sa.Integer(), nullable=True),
        sa.Column("new", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("aged_out", sa.Integer(), nullable=False),
        sa.Column("gone", sa.Integer(), nullable=False),
        sa.Column("pulled", sa.Integer(), nullable=False),
        sa.Column("pull_failed", sa.Integer(), nullable=False),
        sa.Column("gap_from", sa.DateTime(), nullable=True),
        sa.Column("gap_to", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sync_id"),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_runs_change_seq"), ["change_seq"], unique=False
        )

    op.create_table(
        "terraform_resources",
        sa.Column("pull_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=True),
        sa.Column("module", sa.String(), nullable=True),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pull_id", "address"),
    )
    with op.batch_alter_table("terraform_resources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_terraform_resources_change_seq"),
            ["change_seq"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_terraform_resources_session_id"),
            ["session_id"],
            unique=False,
        )

    op.create_table(
        "terraform_states",
        sa.Column("pull_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("pulled_at", sa.DateTime(), nullable=False),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.Column("terraform_version", sa.String(), nullable=True),
        sa.Column("serial", sa.Integer(), nullable=True),
        sa.Column("lineage", sa.String(), nullable=True),
        sa.Column("resource_count", sa.Integer(), nullable=False),
        sa.Column("state_sha256", sa.String(), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pull_id"),
    )
    with op.batch_alter_table("terraform_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_terraform_states_change_seq"), ["change_seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_terraform_states_session_id"), ["session_id"], unique=False
        )

    op.create_table(
        "writes",
        sa.Column("write_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("write_id"),
    )
    with op.batch_alter_table("writes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_writes_change_seq"), ["change_seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_writes_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("writes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_writes_session_id"))
        batch_op.drop_index(batch_op.f("ix_writes_change_seq"))

    op.drop_table("writes")
    with op.batch_alter_table("terraform_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_terraform_states_session_id"))
        batch_op.drop_index(batch_op.f("ix_terraform_states_change_seq"))

    op.drop_table("terraform_states")
    with op.batch_alter_table("terraform_resources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_terraform_resources_session_id"))
        batch_op.drop_index(batch_op.f("ix_terraform_resources_change_seq"))

    op.drop_table("terraform_resources")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_runs_change_seq"))

    op.drop_table("sync_runs")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_pull_wanted"))
        batch_op.drop_index(batch_op.f("ix_sessions_presence"))
        batch_op.drop_index(batch_op.f("ix_sessions_change_seq"))

    op.drop_table("sessions")
    with op.batch_alter_table("session_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_history_change_seq"))

    op.drop_table("session_history")
    with op.batch_alter_table("pulls", schema=None) as batch_op:
        batch_op.drop_index("ix_pulls_session_pulled")
        batch_op.drop_index(batch_op.f("ix_pulls_change_seq"))

    op.drop_table("pulls")
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_session_id"))
        batch_op.drop_index(batch_op.f("ix_artifacts_change_seq"))

    op.drop_table("artifacts")
    op.drop_table("_vxcache_changes")
    op.drop_table("_vxcache_blobs")
