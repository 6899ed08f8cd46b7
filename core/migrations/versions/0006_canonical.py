"""Each inbound message keeps what it was read as: the canonical command and the confidence.

Revision ID: 0006_canonical
Revises: 0005_rules
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_canonical"
down_revision = "0005_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("canonical", sa.String(160), nullable=True))
        batch.add_column(sa.Column("confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("confidence")
        batch.drop_column("canonical")
