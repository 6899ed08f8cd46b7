"""Alembic's entry: run the revisions on the connection core.schema hands over (never a URL here)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from core.db import MIGRATION_LOCK, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Several workers start at once; one migrates, the others then find nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    context.run_migrations()
