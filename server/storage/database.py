"""Engine set-up and the managed session: one transaction per RPC, DB errors translated."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from ..domain.errors import ConcurrentWrite, StorageUnavailable

log = logging.getLogger(__name__)

_WRITE_OPTION = "metareg_write"
# SQLSTATEs of transactions PostgreSQL aborted because of a concurrent one.
_PG_RETRYABLE = {"40001", "40P01", "55P03"}


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN, so writers can take
        # the write lock up front (BEGIN IMMEDIATE) instead of failing later.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=30000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """The engine plus sessions that commit on success and roll back on any error."""

    def __init__(self, url: str | URL, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        options: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            if self.url.database in (None, "", ":memory:"):
                raise ValueError(
                    "in-memory SQLite is not supported (each connection would see its own "
                    "database); use a file, e.g. sqlite:///metareg.db"
                )
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine = create_engine(self.url, **options)
        self._write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction. `write=True` takes SQLite's write lock at BEGIN."""
        engine = self._write_engine if write else self.engine
        try:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as error:
            raise translate_operational_error(error) from error

    def dispose(self) -> None:
        self.engine.dispose()


def translate_operational_error(error: DBAPIError) -> Exception:
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in _PG_RETRYABLE or "database is locked" in str(error.orig):
        return ConcurrentWrite("the database was busy with a concurrent write; retry the request")
    log.error("database error: %s", error.orig)
    return StorageUnavailable(f"the database is unavailable: {type(error.orig).__name__}")
