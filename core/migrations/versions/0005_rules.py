"""Rules keep their state through failing queries; the last good rules file is kept in the store.

rule_states.error_since replaces the nodata state; rule_files holds the last rules section that
loaded, for a worker that starts with a bad file, and the last bad one the admins were told about.

Revision ID: 0005_rules
Revises: 0004_heartbeats
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_rules"
down_revision = "0004_heartbeats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("good_section", sa.Text()),
        sa.Column("good_digest", sa.String(64)),
        sa.Column("loaded_at", sa.Float()),
        sa.Column("bad_digest", sa.String(64)),
        sa.Column("bad_error", sa.Text()),
        sa.Column("noticed_at", sa.Float()),
    )
    with op.batch_alter_table("rule_states") as batch:
        batch.add_column(sa.Column("error_since", sa.Float(), nullable=True))
    # A rule left in `nodata` was failing: it is firing if its incident is, ok otherwise, and its
    # errors count from its last evaluation (as good a start as the old rows know).
    op.execute(
        "UPDATE rule_states SET error_since = evaluated_at, state = CASE WHEN EXISTS (SELECT 1 FROM alerts"
        " WHERE alerts.id = rule_states.alert_id AND alerts.status = 'firing') THEN 'firing' ELSE 'ok' END"
        " WHERE state = 'nodata'"
    )


def downgrade() -> None:
    op.execute("UPDATE rule_states SET state = 'nodata' WHERE error_since IS NOT NULL")
    with op.batch_alter_table("rule_states") as batch:
        batch.drop_column("error_since")
    op.drop_table("rule_files")
