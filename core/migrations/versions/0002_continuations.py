"""MORE continuations get their own name: reply_pages -> continuations ("page" is paging a person).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("reply_pages", "continuations")
    with op.batch_alter_table("continuations") as batch:
        batch.alter_column("pages", new_column_name="parts")
        batch.alter_column("next_page", new_column_name="next_part")


def downgrade() -> None:
    with op.batch_alter_table("continuations") as batch:
        batch.alter_column("parts", new_column_name="pages")
        batch.alter_column("next_part", new_column_name="next_page")
    op.rename_table("continuations", "reply_pages")
