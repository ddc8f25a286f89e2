"""The `metareg` command line: `serve` and `db upgrade` run the server; `schema` and
`metadata` talk to one (see `_cli_schema` and `_cli_metadata`).

Exit codes: 0 success, 1 rejected input, 2 usage (also a query filter or ordering the
server rejects), 3 server unreachable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import click

from ._cli_metadata import metadata
from ._cli_schema import schema

if TYPE_CHECKING:
    from metareg.server.app import Config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """metareg: a versioned metadata schema registry and validation service.

    \b
    Client commands take --address (or $METAREG_ADDRESS, default 127.0.0.1:50051).
    Exit codes: 0 success, 1 rejected input, 2 usage (also a rejected query filter),
    3 server unreachable.
    """


main.add_command(schema)
main.add_command(metadata)


@main.command()
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: 50051].")
@click.option(
    "--database-url",
    default=None,
    help="SQLAlchemy URL (also METAREG_DATABASE_URL) [default: sqlite:///metareg.db].",
)
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING… [default: INFO].")
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Server processes sharing the port, 1..64 (also METAREG_WORKERS) [default: 1].",
)
@click.option(
    "--tls-cert",
    metavar="PEM",
    default=None,
    help="Certificate (chain) file; with --tls-key the port speaks TLS (also METAREG_TLS_CERT).",
)
@click.option(
    "--tls-key", metavar="PEM", default=None, help="Its private key file (also METAREG_TLS_KEY)."
)
@click.option(
    "--tls-client-ca",
    metavar="PEM",
    default=None,
    help="Require client certificates signed by this CA: mTLS (also METAREG_TLS_CLIENT_CA).",
)
def serve(
    host: str | None,
    port: int | None,
    database_url: str | None,
    log_level: str | None,
    workers: int | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
) -> None:
    """Run the gRPC server until SIGTERM or Ctrl-C."""
    from metareg.server.app import serve as run_server
    from metareg.server.app.workers import WorkerFailed
    from metareg.server.domain.errors import DatabaseNotAtHead

    config = _config(
        host=host, port=port, database_url=database_url, log_level=log_level, workers=workers,
        tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
    )  # fmt: skip
    with _operator_errors():
        try:
            run_server(config)
        except DatabaseNotAtHead as error:
            _fail(error.message)
        except WorkerFailed as error:
            _fail(str(error))


def _config(**overrides: str | int | None) -> Config:
    """The server's settings; one that is out of range or not a number is a one-line error."""
    from metareg.server.app import Config

    try:
        return Config.from_env(**overrides)
    except ValueError as error:
        _fail(str(error))


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@contextmanager
def _operator_errors() -> Iterator[None]:
    """Settings, URLs and databases an operator got wrong: one line each, no traceback."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    try:
        yield
    except (ArgumentError, NoSuchModuleError) as error:
        _fail(f"bad database URL: {error}")
    except DBAPIError as error:
        _fail(f"cannot use the database: {str(error.orig).strip() or type(error.orig).__name__}")
    except CommandError as error:
        _fail(f"migration: {error}")
    except OSError as error:
        _fail(str(error))


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@click.option(
    "--database-url",
    default=None,
    help="SQLAlchemy URL (also METAREG_DATABASE_URL) [default: sqlite:///metareg.db].",
)
def upgrade(database_url: str | None) -> None:
    """Apply all pending migrations."""
    from metareg.server.storage.database import Database
    from metareg.server.storage.migrate import current_revision, head_revision, is_unknown
    from metareg.server.storage.migrate import upgrade as run_upgrade

    config = _config(database_url=database_url)
    with _operator_errors():
        database = Database(config.database_url)
        try:
            before = current_revision(database)
            if is_unknown(database, before):
                _fail(
                    f"the database is at revision {before}, newer than this metareg knows "
                    f"(its newest is {head_revision(database)}): use a newer metareg"
                )
            run_upgrade(database)
            click.echo(f"database at revision {head_revision(database)} (was {before or 'empty'})")
        finally:
            database.dispose()
