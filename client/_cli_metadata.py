"""`metareg metadata …`: validate and apply JSONL or CSV files, read and query records."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from ._cli_common import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    address_options,
    connect,
    echo_error,
    reports_errors,
)
from ._cli_query import count, query
from ._client import Client
from ._datafiles import DataFormat, count_lines, data_format, read_records
from ._errors import NotFoundError
from ._ingest import RejectsFile, Summary, apply_records, describe_rejects, validate_records

Command = TypeVar("Command", bound=Callable[..., Any])


@click.group()
def metadata() -> None:
    """Validate, apply, read and query metadata records."""


metadata.add_command(query)
metadata.add_command(count)


def _file_options(command: Command) -> Command:
    for option in reversed(
        [
            click.argument("name"),
            click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
            click.option(
                "--format",
                "file_format",
                type=click.Choice(["jsonl", "csv"]),
                default=None,
                help="File format [default: from the name: .jsonl, .ndjson, .csv, also .gz].",
            ),
            click.option(
                "--rejects",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="Where to write rejected records as JSONL [default: FILE-NAME.rejects.jsonl].",
            ),
            click.option(
                "--coerce-strings",
                is_flag=True,
                help='Accept "95" for number and "true"/"false" for boolean keys (always on '
                "for CSV).",
            ),
            click.option(
                "--flatten-nested",
                is_flag=True,
                help='Turn {"capture": {"temp": 1}} into {"capture.temp": 1}.',
            ),
            click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
        ]
    ):
        command = option(command)
    return command


def _format_of(file: Path, file_format: str | None) -> DataFormat:
    if file_format == "csv":
        return "csv"
    if file_format == "jsonl":
        return "jsonl"
    found = data_format(file)
    if found is None:
        raise click.UsageError(
            f"{file}: cannot tell the format from the name; use .jsonl or .csv, or --format"
        )
    return found


def _rejects_path(file: Path, rejects: Path | None) -> Path:
    if rejects is not None:
        return rejects
    name = file.name.removesuffix(".gz")
    return Path(name.rsplit(".", 1)[0] + ".rejects.jsonl")


def _progress(file: Path, kind: DataFormat, quiet: bool) -> Any:
    total = max(count_lines(file) - (1 if kind == "csv" else 0), 0)
    return tqdm(
        total=total,
        unit="rec",
        unit_scale=True,
        dynamic_ncols=True,
        smoothing=0.1,
        disable=True if quiet else None,  # None: only on a terminal
        file=sys.stderr,
    )


def _key_types(client: Client, name: str) -> dict[str, str]:
    schema = client.schema(name)
    if schema.version == 0:
        raise NotFoundError(f'schema "{name}" does not exist')
    return {key: schema.get_key_type(key) for key in schema.keys(include_deleted=False)}


def _finish(summary: Summary, rejects: RejectsFile, order: tuple[str, ...]) -> None:
    click.echo(summary.line(order))
    for line in describe_rejects(rejects):
        click.echo(line)
    if summary.stopped:
        echo_error(f"error: {summary.stopped}")
    if summary.unreachable:
        sys.exit(EXIT_UNREACHABLE)
    sys.exit(EXIT_OK if summary.ok else EXIT_REJECTED)


@metadata.command()
@_file_options
@address_options
@reports_errors
def validate(
    name: str,
    file: Path,
    file_format: str | None,
    rejects: Path | None,
    coerce_strings: bool,
    flatten_nested: bool,
    quiet: bool,
    address: str,
    timeout: float,
) -> None:
    """Check every record of FILE against schema NAME; write nothing.

    FILE is JSONL ({"data_unit_id": ..., "metadata": {...}} per line) or CSV (a
    data_unit_id column and one column per key). Exit 1 if any record is invalid.
    """
    kind = _format_of(file, file_format)
    with (
        connect(address, timeout) as client,
        RejectsFile(_rejects_path(file, rejects)) as rejected,
    ):
        key_types = _key_types(client, name)
        with _progress(file, kind, quiet) as bar:
            summary = validate_records(
                client,
                name,
                # Without flattening, JSONL metadata goes to the server as the file has it.
                read_records(file, kind, key_types, pass_through=not flatten_nested),
                rejected,
                bar,
                coerce_strings=coerce_strings or kind == "csv",
                flatten_nested=flatten_nested,
            )
    _finish(summary, rejected, ("valid", "invalid"))


@metadata.command()
@_file_options
@click.option(
    "--mode",
    type=click.Choice(["merge", "replace", "keep_existing"]),
    default="merge",
    show_default=True,
    help="merge: set keys (null removes one); replace: the record becomes these keys; "
    "keep_existing: only add absent keys.",
)
@click.option(
    "--partial",
    is_flag=True,
    help="Apply the valid records and reject the invalid ones, instead of stopping at the "
    "first request (of 1000) with an invalid record.",
)
@address_options
@reports_errors
def apply(
    name: str,
    file: Path,
    file_format: str | None,
    rejects: Path | None,
    coerce_strings: bool,
    flatten_nested: bool,
    quiet: bool,
    mode: str,
    partial: bool,
    address: str,
    timeout: float,
) -> None:
    """Apply the records of FILE to schema NAME, in requests of 1000.

    Each request is one transaction. Without --partial an invalid record rejects its
    whole request and the run stops there; earlier requests stay applied. Rejected
    records and their violations go to the rejects file. Exit 1 if any was rejected.
    """
    kind = _format_of(file, file_format)
    with (
        connect(address, timeout) as client,
        RejectsFile(_rejects_path(file, rejects)) as rejected,
    ):
        key_types = _key_types(client, name)
        with _progress(file, kind, quiet) as bar:
            summary = apply_records(
                client,
                name,
                # Without flattening, JSONL metadata goes to the server as the file has it.
                read_records(file, kind, key_types, pass_through=not flatten_nested),
                rejected,
                bar,
                mode=mode,
                partial=partial,
                coerce_strings=coerce_strings or kind == "csv",
                flatten_nested=flatten_nested,
            )
    order = ("applied", "unchanged", "rejected", "not_applied", "not_sent", "unknown")
    _finish(summary, rejected, order)


@metadata.command()
@click.argument("name")
@click.argument("ids", nargs=-1, required=True)
@address_options
@reports_errors
def get(name: str, ids: tuple[str, ...], address: str, timeout: float) -> None:
    """Print the records of the given data unit IDS as JSONL (the apply format).

    Exit 1 if any of them has no record.
    """
    with connect(address, timeout) as client:
        found = client.get_metadata(name, ids)
    for data_unit_id in dict.fromkeys(ids):
        if data_unit_id in found:
            record = {"data_unit_id": data_unit_id, "metadata": found[data_unit_id]}
            click.echo(json.dumps(record, ensure_ascii=False))
    missing = [i for i in dict.fromkeys(ids) if i not in found]
    if missing:
        echo_error(f"no record for: {', '.join(missing)}")
        sys.exit(EXIT_REJECTED)
