"""Migrations match the models, run from the CLI, and a database behind head is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from metareg.server.app import Config, create_server
from metareg.server.domain.errors import DatabaseNotAtHead
from metareg.server.storage.database import Database
from metareg.server.storage.migrate import current_revision, head_revision
from metareg.server.storage.models import Base

from .pgcluster import Cluster

METAREG = str(Path(sys.executable).with_name("metareg"))


def test_models_equal_the_migrated_schema(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        assert current_revision(db) == head_revision(db)
    finally:
        db.dispose()


def test_fresh_sqlite_file_is_migrated_automatically(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    server, _ = create_server(Config(database_url=url, port=0))
    server.stop(None)
    db = Database(url)
    assert current_revision(db) == head_revision(db)
    db.dispose()


def test_unmigrated_sqlite_database_with_tables_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE something_else (x INTEGER)")
    engine.dispose()
    with pytest.raises(DatabaseNotAtHead, match="metareg db upgrade"):
        create_server(Config(database_url=url, port=0))


def test_postgres_is_refused_until_db_upgrade(pg_cluster: Cluster) -> None:
    with pg_cluster.database("metareg_upgrade_cli") as url:
        with pytest.raises(DatabaseNotAtHead, match="run `metareg db upgrade` first"):
            create_server(Config(database_url=url, port=0))
        result = subprocess.run(
            [METAREG, "db", "upgrade", "--database-url", url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert "database at revision" in result.stdout
        server, port = create_server(Config(database_url=url, port=0))
        assert port > 0
        server.stop(None)
