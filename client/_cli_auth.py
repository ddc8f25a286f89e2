"""`metareg auth …` (API keys, on the server's database) and `metareg audit` (the log)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ._cli_common import address_options, connect, reports_errors
from ._cli_operator import fail_operator, operator_config, operator_errors

if TYPE_CHECKING:
    from metareg.server.domain.access import Caller
    from metareg.server.service.access import AccessService

ROLES = ("reader", "writer", "admin")
DATABASE_OPTION = click.option(
    "--database-url",
    default=None,
    help="SQLAlchemy URL of the server's database (also METAREG_DATABASE_URL) "
    "[default: sqlite:///metareg.db].",
)


@click.group()
def auth() -> None:
    """Make, list and revoke API keys (on the server's database).

    \b
    Once a key exists, every call needs one: `authorization: Bearer <token>`
    (the client's token=..., the CLI's --token or $METAREG_TOKEN). Roles:
    reader (reads, validation, queries), writer (also bundles, deletes,
    update-by-filter), admin (also schema changes and the audit log).
    """


@contextmanager
def _access(database_url: str | None) -> Iterator[AccessService]:
    from metareg.server.service.access import AccessService
    from metareg.server.storage.database import Database
    from metareg.server.storage.migrate import ensure_at_head

    config = operator_config(database_url=database_url)
    with operator_errors():
        database = Database(config.database_url)
        try:
            ensure_at_head(database)
            yield AccessService(database)
        finally:
            database.dispose()


def _cli_caller(command: str) -> Caller:
    from metareg.server.domain.access import Caller

    return Caller("cli", "local", f"auth {command}")


@auth.command("create-key")
@click.option("--name", required=True, help="A name for the key: who or what uses it.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the key may do.")
@click.option(
    "--schemas",
    "globs",
    multiple=True,
    metavar="GLOB",
    help="Schemas the key covers (repeat, or separate by commas; globs such as "
    "'team-a-*'). Default: every schema.",
)
@DATABASE_OPTION
def create_key(name: str, role: str, globs: tuple[str, ...], database_url: str | None) -> None:
    """Make an API key and print its token, once (only its hash is stored)."""
    from metareg.server.domain.access import Role
    from metareg.server.domain.errors import MetaregError

    schemas = [g.strip() for item in globs for g in item.split(",") if g.strip()]
    with _access(database_url) as access:
        try:
            key, token = access.create_key(name, Role.parse(role), schemas,
                                           _cli_caller("create-key"))  # fmt: skip
        except MetaregError as error:
            fail_operator(error.message)
    covered = ", ".join(key.schemas) if key.schemas else "every schema"
    click.echo(token)
    click.echo(
        f'key "{key.name}": {key.role.label} of {covered}. The token above is shown '
        "only now: store it (a lost token cannot be read back; revoke the key and "
        "make another).",
        err=True,
    )


@auth.command("list-keys")
@DATABASE_OPTION
def list_keys(database_url: str | None) -> None:
    """List every key (never a token): name, role, schemas, made, revoked."""
    with _access(database_url) as access:
        found = access.list_keys()
    if not found:
        click.echo("no API keys: anonymous calls are served on loopback only", err=True)
        return
    rows = [("NAME", "ROLE", "SCHEMAS", "CREATED", "REVOKED")]
    for key, created, revoked in found:
        rows.append((
            key.name, key.role.label, ",".join(key.schemas) or "*",
            created.isoformat(timespec="seconds"),
            revoked.isoformat(timespec="seconds") if revoked else "-",
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


@auth.command("revoke-key")
@click.argument("name")
@DATABASE_OPTION
def revoke_key(name: str, database_url: str | None) -> None:
    """Revoke a key: it stops working at once, on every server."""
    from metareg.server.domain.errors import MetaregError

    with _access(database_url) as access:
        try:
            revoked = access.revoke_key(name, _cli_caller("revoke-key"))
        except MetaregError as error:
            fail_operator(error.message)
    click.echo(f'key "{name}" ' + ("revoked" if revoked else "was revoked already"), err=True)


@click.command()
@click.argument("schema", required=False, default="")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Newest events to show.")  # fmt: skip
@click.option("--format", "output", type=click.Choice(["table", "jsonl"]), default="table",
              show_default=True)  # fmt: skip
@address_options
@reports_errors
def audit(schema: str, limit: int, output: str, **connection: object) -> None:
    """Show the audit log, newest first: every schema change, DeleteMetadata,
    UpdateByFilter and key change, with who made it (needs an admin key)."""
    with connect(**connection) as client:  # type: ignore[arg-type]
        for number, event in enumerate(client.audit_events(schema)):
            if number >= limit:
                break
            if output == "jsonl":
                click.echo(json.dumps(event.to_dict(), ensure_ascii=False))
            else:
                when = event.time.isoformat(timespec="seconds") if event.time else "-"
                click.echo(
                    f"{when}  {event.key_name:<16} "
                    f"{event.rpc:<16} {event.schema or '-':<20} {event.summary}"
                )
