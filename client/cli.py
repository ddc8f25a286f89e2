"""The `metareg` command line: `serve` and `db upgrade` run the server; `schema` and
`metadata` talk to one (see `_cli_schema` and `_cli_metadata`).

Exit codes: 0 success, 1 rejected input, 2 usage (also a query filter or ordering the
server rejects), 3 server unreachable.
"""

from __future__ import annotations

import click

from ._cli_auth import audit, auth
from ._cli_export import export
from ._cli_metadata import metadata
from ._cli_operator import fail_operator, operator_config, operator_errors
from ._cli_schema import schema


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
main.add_command(auth)
main.add_command(audit)


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
@click.option(
    "--log-format",
    metavar="text|json",
    default=None,
    help="Log lines as text, or one JSON object each (also METAREG_LOG_FORMAT) [default: text].",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (also METAREG_METRICS_PORT) "
    "[default: none].",
)
@click.option(
    "--allow-anonymous",
    is_flag=True,
    default=None,
    help="Serve calls without an API key on a non-loopback interface while no key exists "
    "(also METAREG_ALLOW_ANONYMOUS). Without it such a server refuses to start.",
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
    log_format: str | None,
    metrics_port: int | None,
    allow_anonymous: bool | None,
) -> None:
    """Run the gRPC server until SIGTERM or Ctrl-C."""
    from metareg.server.app import serve as run_server
    from metareg.server.app.access import UnsafeExposure
    from metareg.server.app.tracing import TracingMisconfigured
    from metareg.server.app.workers import WorkerFailed

    config = operator_config(
        host=host, port=port, database_url=database_url, log_level=log_level, workers=workers,
        tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
        log_format=log_format, metrics_port=metrics_port, allow_anonymous=allow_anonymous,
    )  # fmt: skip
    with operator_errors():
        try:
            run_server(config)
        except (UnsafeExposure, TracingMisconfigured) as error:
            fail_operator(str(error))
        except WorkerFailed as error:
            fail_operator(str(error))


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

    config = operator_config(database_url=database_url)
    with operator_errors():
        database = Database(config.database_url)
        try:
            before = current_revision(database)
            if is_unknown(database, before):
                fail_operator(
                    f"the database is at revision {before}, newer than this metareg knows "
                    f"(its newest is {head_revision(database)}): use a newer metareg"
                )
            run_upgrade(database)
            click.echo(f"database at revision {head_revision(database)} (was {before or 'empty'})")
        finally:
            database.dispose()


from ._cli_edit import add_key, delete, delete_key, restore_key, update_where  # noqa: E402

metadata.add_command(delete)
metadata.add_command(update_where)
schema.add_command(add_key)
schema.add_command(delete_key)
schema.add_command(restore_key)
metadata.add_command(export)
