"""Engine set-up and the managed session: one transaction per RPC, DB errors translated."""

from __future__ import annotations

import logging
import math
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from ..domain.errors import ConcurrentWrite, StorageUnavailable
from . import bulk

log = logging.getLogger(__name__)

_WRITE_OPTION = "metareg_write"
# SQLSTATEs of transactions PostgreSQL aborted because of a concurrent one.
_PG_RETRYABLE = {"40001", "40P01", "55P03"}


# The backends metareg runs on, and the drivers it speaks them with (None: the default).
SUPPORTED_BACKENDS = {"sqlite": (None, "pysqlite"), "postgresql": (None, "psycopg")}
_EXAMPLES = "sqlite:///metareg.db or postgresql://user@host/dbname"


class BadDatabaseURL(ValueError):
    """A database URL metareg cannot use; the message names it (without its password)."""


def parse_database_url(url: str | URL) -> URL:
    """`url` parsed, or BadDatabaseURL: unparsable, another backend or driver, or an
    in-memory SQLite database (each connection would see its own)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as error:  # ValueError: e.g. a port that is no number
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))
        raise BadDatabaseURL(
            f"bad database URL {shown!r} ({error}): use e.g. {_EXAMPLES}"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    backend, driver = parsed.get_backend_name(), parsed.drivername.partition("+")[2] or None
    if backend not in SUPPORTED_BACKENDS:
        raise BadDatabaseURL(
            f"bad database URL {shown!r}: unsupported scheme {backend!r}; metareg supports "
            f"sqlite and postgresql (e.g. {_EXAMPLES})"
        )
    if driver not in SUPPORTED_BACKENDS[backend]:
        allowed = " or ".join(f"{backend}+{d}://" for d in SUPPORTED_BACKENDS[backend] if d)
        raise BadDatabaseURL(
            f"bad database URL {shown!r}: unsupported driver {driver!r}; use {backend}:// "
            f"or {allowed}"
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise BadDatabaseURL(
            "in-memory SQLite is not supported (each connection would see its own "
            "database); use a file, e.g. sqlite:///metareg.db"
        )
    return parsed


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
            # Checkpoints run in the background (WalCheckpointer); this is only a
            # backstop that keeps the log under ~40 MB should that thread fall behind.
            f"wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


BACKSTOP_CHECKPOINT_PAGES = 10_000


class WalCheckpointer(threading.Thread):
    """Copies SQLite's write-ahead log into the database file off the request path.

    By default SQLite checkpoints inside the commit that crosses 1000 log pages,
    adding tens of milliseconds to every few bundles. A PASSIVE checkpoint from
    this thread never blocks writers or readers. It runs right after each write
    commits (`written`), while the next bundle is still being decoded, so that it
    usually completes: the next writer then starts the log from the beginning again.
    Checkpoints that could only run alongside writes never caught up, the log grew
    to the backstop, and every ~50th bundle paid for a whole checkpoint (40-130 ms).
    """

    def __init__(self, path: str, interval: float = 0.2) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.path = path
        self.interval = interval
        self._stopped = threading.Event()
        self._written = threading.Event()

    def written(self) -> None:
        """A write transaction committed: checkpoint soon."""
        self._written.set()

    def run(self) -> None:
        try:
            connection = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        except sqlite3.Error as error:  # the server reports the database itself
            log.debug("background checkpoints off: %s", error)
            return
        try:
            while not self._stopped.is_set():
                if not self._written.wait(self.interval):
                    continue
                self._written.clear()
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as error:  # busy or locked: try again next time
                    log.debug("background checkpoint skipped: %s", error)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopped.set()
        self._written.set()
        self.join(timeout=5)


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        # psycopg parses jsonb itself; orjson does it about three times faster.
        from psycopg.types.json import set_json_loads

        set_json_loads(orjson.loads, dbapi_connection)


class Database:
    """The engine plus sessions that commit on success and roll back on any error."""

    def __init__(
        self, url: str | URL, *, pool_size: int = 10, pool_timeout: float = 30.0,
        echo: bool = False,
    ) -> None:  # fmt: skip
        self.url = parse_database_url(url)
        self.dialect = self.url.get_backend_name()
        # Connections kept, and as many more opened while calls need them; a call that
        # finds them all busy for pool_timeout seconds is UNAVAILABLE (it wrote nothing).
        options: dict[str, Any] = {
            "echo": echo,
            "pool_size": pool_size,
            "max_overflow": pool_size,
            "pool_timeout": pool_timeout,
        }
        if self.dialect == "sqlite":
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            options.update(pool_pre_ping=True)
        self.engine = create_engine(self.url, **options)
        self.max_connections = 2 * pool_size
        self._write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._checkpointer: WalCheckpointer | None = None
        self._readers: SqliteReaders | None = None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
            assert self.url.database is not None
            self._checkpointer = WalCheckpointer(self.url.database)
            self._checkpointer.start()
            self._readers = SqliteReaders(self.url.database)
        elif self.dialect == "postgresql":
            _configure_postgresql(self.engine)

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    def pool_in_use(self) -> int:
        """Pooled connections lent out now (to sessions and reads)."""
        return int(self.engine.pool.checkedout())  # type: ignore[attr-defined]

    def pool_idle(self) -> int:
        """Pooled connections open and waiting to be lent."""
        return int(self.engine.pool.checkedin())  # type: ignore[attr-defined]

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction. `write=True` takes SQLite's write lock at BEGIN."""
        engine = self._write_engine if write else self.engine
        try:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as error:
            raise translate_operational_error(error) from error
        except PoolTimeout as error:
            raise pool_exhausted(self.engine) from error
        checkpointer = self._checkpointer  # once: dispose() may clear it meanwhile
        if write and checkpointer is not None:
            checkpointer.written()

    def read(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        """One SELECT outside any transaction, by the driver: for the single-row lookups
        of small, frequent calls.

        Each statement sees the latest committed data. On SQLite it runs in autocommit
        mode on a read connection of this thread's own (3-4 µs); elsewhere on a pooled
        connection (about 10 µs more for checkout and reset, still ten times cheaper
        than a session), in its own short transaction, rolled back when the connection
        returns.
        """
        sql, positions = bulk.compiled_sql(self.engine.dialect, statement)
        values: Any = tuple(params[name] for name in positions) if positions else params
        if self._readers is not None:
            return self._readers.read(sql, values)
        try:
            connection = self.engine.raw_connection()
        except OperationalError as error:
            raise translate_operational_error(error) from error
        except PoolTimeout as error:
            raise pool_exhausted(self.engine) from error
        except self.engine.dialect.loaded_dbapi.Error as error:
            # The pool connects outside SQLAlchemy's wrapping: a database that cannot be
            # reached raises the driver's own error here (it was INTERNAL).
            raise translate_driver_error(error) from error
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, values)
                return list(cursor.fetchall())
            finally:
                cursor.close()
        except self.engine.dialect.loaded_dbapi.Error as error:
            connection.invalidate(error)  # a broken connection must not go back to the pool
            raise translate_driver_error(error) from error
        finally:
            connection.close()

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._readers is not None:
            self._readers.close()
        self.engine.dispose()


class DatabaseProbe:
    """Whether the database answers, asked on a connection of the probe's own (never one
    of the calls' pool, which may be busy without the database being down).

    PostgreSQL: `SELECT 1` on a connection kept open between probes, opened again after
    a failure; connecting, the statement and unacknowledged sends each time out after
    `timeout` seconds (libpq counts whole seconds for the connect, at least 2). SQLite:
    the file's schema version read on a fresh read-write connection, which fails when
    the file has gone or cannot be opened.
    """

    def __init__(self, database: Database, timeout: float) -> None:
        self.timeout = timeout
        self._url = database.url
        self._engine: Engine | None = None
        self._path: str | None = None
        if database.dialect == "sqlite":
            assert database.url.database is not None
            self._path = Path(database.url.database).absolute().as_uri() + "?mode=rw"
        else:
            milliseconds = int(timeout * 1000)
            self._engine = create_engine(
                self._url,
                pool_size=1,
                max_overflow=0,
                pool_timeout=timeout,
                connect_args={
                    "connect_timeout": max(2, math.ceil(timeout)),
                    "options": f"-c statement_timeout={milliseconds}",
                    "tcp_user_timeout": milliseconds,
                    "application_name": "metareg health probe",
                },
            )

    def __call__(self) -> str | None:
        """None if the database answered, else why not (one line, no password)."""
        try:
            if self._path is not None:
                connection = sqlite3.connect(self._path, uri=True, timeout=self.timeout)
                try:
                    connection.execute("PRAGMA schema_version").fetchone()
                finally:
                    connection.close()
                return None
            assert self._engine is not None
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                try:
                    cursor.execute("SELECT 1")
                    cursor.fetchall()
                finally:
                    cursor.close()
                raw.rollback()
            except BaseException:
                raw.invalidate()  # a fresh connection next time
                raise
            finally:
                raw.close()
            return None
        except Exception as error:
            cause = getattr(error, "orig", None) or error
            text = str(cause).strip().splitlines()
            return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class SqliteReaders:
    """Read-only SQLite connections, one per thread, for `Database.read`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def read(self, sql: str, values: Any) -> list[Any]:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        try:
            if connection is None:
                connection = self._open()
            return connection.execute(sql, values).fetchall()
        except sqlite3.Error as error:
            self._local.connection = None  # open a fresh one next time
            raise translate_driver_error(error) from error

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA query_only=ON")
        self._local.connection = connection
        with self._lock:
            self._opened.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()


class DatabaseFault(RuntimeError):
    """A database error that every retry would meet again: a statement the database
    refuses (its syntax, size or limits), a constraint or a value it cannot take.

    Deliberately no MetaregError: it is a bug, answered INTERNAL with an incident id
    (app.interceptors), never UNAVAILABLE, the status clients retry.
    """


# SQLite result codes (the low byte of `sqlite_errorcode`) of a statement that is
# wrong whenever it runs: SQLITE_ERROR (syntax, "Expression tree is too large", "too
# many SQL variables", a missing table), INTERNAL, TOOBIG, CONSTRAINT, MISMATCH,
# MISUSE and RANGE. Busy and locked are contention; the others (I/O, cannot open,
# full, read-only, corrupt, ...) are the database's state, which an operator fixes.
_SQLITE_DETERMINISTIC = {1, 2, 18, 19, 20, 21, 25}
_SQLITE_CONTENTION = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
# PEP 249 classes that name the statement or the data as the culprit, whatever the
# driver. InternalError is not one: PostgreSQL files "read-only transaction" (a
# standby after a failover) under it. Both drivers raise OperationalError for
# deterministic causes too, which the result code or SQLSTATE tells apart.
_DETERMINISTIC_CLASSES = {"ProgrammingError", "IntegrityError", "DataError", "NotSupportedError"}
# SQLSTATE class 54, "program limit exceeded" (statement too complex, too many
# arguments or columns), which psycopg files under OperationalError.
_PG_LIMIT_CLASS = "54"


def pool_exhausted(engine: Engine) -> StorageUnavailable:
    log.warning("every database connection was busy: %s", engine.pool.status())
    return StorageUnavailable(
        "every database connection of this server was busy for too long; nothing was "
        "written: retry the request"
    )


def translate_operational_error(error: DBAPIError) -> Exception:
    return translate_driver_error(error.orig)


def translate_driver_error(error: BaseException | None) -> Exception:
    """The error to raise for a driver's error: retryable contention (ConcurrentWrite),
    a deterministic fault (DatabaseFault, INTERNAL), or else the database unavailable."""
    sqlstate = getattr(error, "sqlstate", None)
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    primary = sqlite_code & 0xFF if isinstance(sqlite_code, int) else None
    if (
        sqlstate in _PG_RETRYABLE
        or primary in _SQLITE_CONTENTION
        or "database is locked" in str(error)
    ):
        return ConcurrentWrite("the database was busy with a concurrent write; retry the request")
    if _is_deterministic(error, sqlstate, primary):
        return DatabaseFault(f"database error: {type(error).__name__}: {error}")
    log.error("database error: %s", error)
    return StorageUnavailable(f"the database is unavailable: {type(error).__name__}")


def _is_deterministic(error: BaseException | None, sqlstate: object, primary: int | None) -> bool:
    if primary is not None:
        return primary in _SQLITE_DETERMINISTIC
    if isinstance(sqlstate, str) and sqlstate.startswith(_PG_LIMIT_CLASS):
        return True
    return any(cls.__name__ in _DETERMINISTIC_CLASSES for cls in type(error).__mro__)
