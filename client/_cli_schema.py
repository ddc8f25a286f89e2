"""`metareg schema …`: list, show, history, import and export schemas."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ._cli_common import EXIT_REJECTED, address_options, connect, reports_errors
from ._errors import NotFoundError
from ._files import SCHEMA_FILE_SUFFIXES
from ._results import SchemaUpdate
from ._schema import MetadataSchema


@click.group()
def schema() -> None:
    """Read and change schemas."""


def _existing(schema_: MetadataSchema) -> MetadataSchema:
    if schema_.version == 0:
        raise NotFoundError(f'schema "{schema_.name}" does not exist')
    return schema_


def _as_json(schema_: MetadataSchema) -> dict[str, Any]:
    keys = {key: schema_.key_info(key) for key in schema_.keys(include_deleted=True)}
    created = schema_.created_at
    return {
        "name": schema_.name,
        "version": schema_.version,
        "created_at": created.isoformat() if created else None,
        "allow_unknown_keys": schema_.allow_unknown_keys,
        "keys": keys,
    }


@schema.command("list")
@address_options
@reports_errors
def list_schemas(address: str, timeout: float) -> None:
    """List every schema with its latest version."""
    with connect(address, timeout) as client:
        for summary in client.list_schemas():
            updated = summary.updated_at.isoformat() if summary.updated_at else ""
            click.echo(
                f"{summary.name}\tv{summary.latest_version}\t{summary.active_keys} keys\t{updated}"
            )


@schema.command()
@click.argument("name")
@click.option("--version", type=click.IntRange(min=0), default=0, help="Version [default: latest].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, deleted keys included.")
@address_options
@reports_errors
def show(name: str, version: int, as_json: bool, address: str, timeout: float) -> None:
    """Print the keys of a schema version."""
    with connect(address, timeout) as client:
        found = _existing(client.schema(name, version=version))
    if as_json:
        click.echo(json.dumps(_as_json(found), indent=2))
    else:
        click.echo(str(found))


@schema.command()
@click.argument("name")
@address_options
@reports_errors
def history(name: str, address: str, timeout: float) -> None:
    """Print every version of a schema, newest first, with its changes."""
    with connect(address, timeout) as client:
        versions = _existing(client.schema(name)).history()
    for info in versions:
        when = info.created_at.strftime("%Y-%m-%d %H:%M:%S") if info.created_at else ""
        click.echo(f"v{info.version}  {when}")
        for change in info.changes:
            click.echo(f"    {change}")


def _print_import(name: str, path: Path, update: SchemaUpdate, force: bool) -> int:
    """Report an import (or dry run); the exit code says whether it was (or would be) refused."""
    if not update.changed:
        click.echo(f"{name} already matches {path} (version {update.version}); nothing to do")
        return 0
    if update.dry_run:
        click.echo(f"dry run: importing {path} would create version {update.version} of {name}:")
    else:
        click.echo(f"{name}: imported {path} as version {update.version}:")
    for change in update.applied_changes:
        click.echo(f"  {change}")
    impact_lines = update.impact.describe()
    if not impact_lines:
        click.echo("no stored record is affected")
    for line in impact_lines:
        click.echo(line)
    if update.dry_run and update.impact.invalid_records and not force:
        click.echo(
            "without --force the import would be refused; with --force those values are removed"
        )
        return EXIT_REJECTED
    return 0


@schema.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show the changes and their impact; write nothing.")
@click.option("--force", is_flag=True, help="Apply even if stored values become invalid.")
@click.option(
    "--allow-unknown-keys/--no-allow-unknown-keys",
    default=None,
    help="Whether records may carry undeclared keys [default: unchanged].",
)
@address_options
@reports_errors
def import_schema(
    name: str,
    file: Path,
    dry_run: bool,
    force: bool,
    allow_unknown_keys: bool | None,
    address: str,
    timeout: float,
) -> None:
    """Make schema NAME match FILE (.json, .yaml or .yml). Keys missing from FILE are
    soft-deleted."""
    if file.suffix.lower() not in SCHEMA_FILE_SUFFIXES:
        raise click.UsageError(
            f"{file}: unsupported file type; use one of {', '.join(SCHEMA_FILE_SUFFIXES)}"
        )
    with connect(address, timeout) as client:
        update = client.import_schema_from_file(
            name, file, allow_unknown_keys=allow_unknown_keys, force=force, dry_run=dry_run
        )
    sys.exit(_print_import(name, file, update, force))


@schema.command()
@click.argument("name")
@click.option("--version", type=click.IntRange(min=0), default=0, help="Version [default: latest].")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["dict", "json-schema"]),
    default="dict",
    show_default=True,
    help="dict: the import format (re-importable); json-schema: draft 2020-12 for one record.",
)
@address_options
@reports_errors
def export(name: str, version: int, output_format: str, address: str, timeout: float) -> None:
    """Print a schema version as JSON."""
    with connect(address, timeout) as client:
        found = _existing(client.schema(name, version=version))
        document = found.to_dict() if output_format == "dict" else found.to_json_schema()
    click.echo(json.dumps(document, indent=2))
