"""`metareg schema …`: list, show, history, import and export schemas."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ._cli_common import EXIT_REJECTED, address_options, connect, reports_errors
from ._errors import InvalidArgumentError, NotFoundError
from ._files import SCHEMA_FILE_SUFFIXES, load_schema_file
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


def _document_rank(keys: list[str]) -> Callable[[str], int]:
    """The place of a key in the import document; keys it does not name come after."""
    rank = {key: i for i, key in enumerate(keys)}
    return lambda key: rank.get(key, len(rank))


def _change_key(change: str, keys: list[str]) -> str:
    """The document key a change line ("set_scalar KEY ...") is about, or "" for none
    (a key the document drops, or an option). Keys may hold spaces: the longest wins."""
    _, _, rest = change.partition(" ")
    named = [k for k in keys if rest == k or rest.startswith(f"{k} ")]
    return max(named, key=len, default="")


def _in_document_order(changes: tuple[str, ...], keys: list[str]) -> list[str]:
    rank = _document_rank(keys)
    return sorted(changes, key=lambda change: rank(_change_key(change, keys)))  # stable


def _print_import(name: str, path: Path, update: SchemaUpdate, force: bool, keys: list[str]) -> int:
    """Report an import (or dry run); the exit code says whether it was (or would be) refused."""
    if not update.changed:
        click.echo(f"{name} already matches {path} (version {update.version}); nothing to do")
        return 0
    if update.dry_run:
        click.echo(f"dry run: importing {path} would create version {update.version} of {name}:")
    else:
        click.echo(f"{name}: imported {path} as version {update.version}:")
    for change in _in_document_order(update.applied_changes, keys):
        click.echo(f"  {change}")
    impact_lines = update.impact.describe()
    if not impact_lines:
        click.echo("no stored record is affected")
    for line in impact_lines:
        click.echo(line)
    if update.dry_run and update.impact.invalid_records and not force:
        click.echo(
            "without --force the import would be refused; with --force those values are removed"
            + (" (records that lack a required key are left as they are)"
               if update.impact.missing_records_by_key else "")
        )  # fmt: skip
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
    soft-deleted.

    Changes (and rejected entries) are listed in the order of FILE's keys, then the
    deletions of keys FILE drops, then option changes: the same on every run.
    """
    if file.suffix.lower() not in SCHEMA_FILE_SUFFIXES:
        raise click.UsageError(
            f"{file}: unsupported file type; use one of {', '.join(SCHEMA_FILE_SUFFIXES)}"
        )
    keys = list(load_schema_file(file))
    with connect(address, timeout) as client:
        try:
            update = client.import_schema_from_file(
                name, file, allow_unknown_keys=allow_unknown_keys, force=force, dry_run=dry_run
            )
        except InvalidArgumentError as error:
            rank = _document_rank(keys)
            error.violations.sort(key=lambda v: rank(_violation_key(v.field)))  # stable
            raise
    sys.exit(_print_import(name, file, update, force, keys))


def _violation_key(field: str) -> str:
    """The key of a violation's field `document["KEY"]`, or "" for another field."""
    if field.startswith('document["') and field.endswith('"]'):
        return field[len('document["') : -len('"]')]
    return ""


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
