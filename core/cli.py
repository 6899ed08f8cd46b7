"""`flask --app app db upgrade|current`: the store's schema, for operators who migrate by hand."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import Engine

from core import db


def _engine() -> Engine:
    engine: Engine = current_app.extensions["operator"].engine
    return engine


# An AppGroup: its commands run inside the application context, with the app's engine.
db_command = AppGroup("db", help="The store's schema (Alembic revisions in core/migrations).")


@db_command.command("upgrade")
def upgrade_command() -> None:
    """Apply every revision the store does not have yet."""
    engine = _engine()
    before = db.revision_of(engine)
    db.upgrade(engine)
    after = db.revision_of(engine)
    moved = f" (was {before or 'empty'})" if after != before else " (nothing to apply)"
    click.echo(f"{engine.url.render_as_string(hide_password=True)} at revision {after}{moved}")


@db_command.command("current")
def current_command() -> None:
    """Say which revision the store is at, and the newest this code knows."""
    engine = _engine()
    click.echo(f"store at {db.revision_of(engine) or 'no revision'}; newest is {db.head_revision()}")
