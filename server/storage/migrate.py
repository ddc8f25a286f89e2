"""Alembic plumbing: upgrade to head, and refuse to serve a database that is behind."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect

from ..domain.errors import DatabaseNotAtHead
from .database import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", db.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def head_revision(db: Database) -> str:
    head = ScriptDirectory.from_config(alembic_config(db)).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    config = alembic_config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def is_empty(db: Database) -> bool:
    with db.engine.connect() as connection:
        return not inspect(connection).get_table_names()


def ensure_at_head(db: Database, *, migrate_fresh_sqlite: bool = True) -> None:
    """Upgrade a brand-new SQLite database; refuse any other database not at head."""
    head = head_revision(db)
    current = current_revision(db)
    if current == head:
        return
    if migrate_fresh_sqlite and db.dialect == "sqlite" and current is None and is_empty(db):
        upgrade(db)
        return
    raise DatabaseNotAtHead(current, head, newer=is_unknown(db, current))


def is_unknown(db: Database, revision: str | None) -> bool:
    """Whether `revision` is one this version's migrations do not have (a newer one)."""
    if revision is None:
        return False
    try:
        ScriptDirectory.from_config(alembic_config(db)).get_revision(revision)
    except CommandError:
        return True
    return False
