"""`metareg metadata …`: validate and apply JSONL, CSV or Parquet files and sidecar folders;
read and query records."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from ._cli_common import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    address_options,
    connect,
    echo_error,
    reports_errors,
)
from ._cli_query import count, query, values
from ._client import Client
from ._datafiles import DataFormat, count_records, data_format, read_records
from ._errors import NotFoundError
from ._ingest import (
    RejectsFile,
    Summary,
    apply_records,
    describe_rejects,
    run_key,
    validate_records,
)
from ._progress import DEFAULT_INTERVAL, Progress
from ._source import SourceRecord

Command = TypeVar("Command", bound=Callable[..., Any])


@click.group()
def metadata() -> None:
    """Validate, apply, read and query metadata records."""


metadata.add_command(query)
metadata.add_command(count)
metadata.add_command(values)


def _file_options(command: Command) -> Command:
    for option in reversed(
        [
            click.argument("name"),
            click.argument(
                "file",
                required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
            ),
            click.option(
                "--sidecars",
                type=click.Path(exists=True, file_okay=False, path_type=Path),
                default=None,
                help="Instead of FILE: every *.json under this folder is one record; "
                "DIR/images/a.json is data unit images/a, nested objects flattened with dots.",
            ),
            click.option(
                "--format",
                "file_format",
                type=click.Choice(["jsonl", "csv", "parquet"]),
                default=None,
                help="File format [default: from the name: .jsonl, .ndjson, .csv, also .gz; "
                ".parquet with the [parquet] extra].",
            ),
            click.option(
                "--rejects",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="Where to write rejected records as JSONL [default: NAME.COMMAND.rejects"
                ".jsonl from the input's name, e.g. cams.apply.rejects.jsonl].",
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
                help='Turn {"capture": {"temp": 1}} into {"capture.temp": 1} (always on for '
                "--sidecars).",
            ),
            click.option("-q", "--quiet", is_flag=True, help="No progress."),
            click.option(
                "--progress-every",
                type=click.FloatRange(min=0),
                default=DEFAULT_INTERVAL,
                show_default=True,
                metavar="SECONDS",
                help="Off a terminal, print a progress line this often.",
            ),
        ]
    ):
        command = option(command)
    return command


@dataclass(frozen=True)
class _Source:
    path: Path
    kind: DataFormat

    def records(self, key_types: dict[str, str], pass_through: bool) -> Iterator[SourceRecord]:
        return read_records(self.path, self.kind, key_types, pass_through=pass_through)


def _source(file: Path | None, sidecars: Path | None, file_format: str | None) -> _Source:
    if (file is None) == (sidecars is None):
        raise click.UsageError("give either FILE or --sidecars DIR")
    if sidecars is not None:
        if file_format is not None:
            raise click.UsageError("--format is for FILE; --sidecars reads *.json files")
        return _Source(sidecars, "sidecars")
    assert file is not None
    if file_format in ("csv", "jsonl", "parquet"):
        return _Source(file, file_format)  # type: ignore[arg-type]
    found = data_format(file)
    if found is None:
        raise click.UsageError(
            f"{file}: cannot tell the format from the name; use .jsonl, .csv or .parquet, "
            "or --format"
        )
    return _Source(file, found)


def _rejects_path(source: _Source, command: str, rejects: Path | None) -> Path:
    """The rejects file: given, or derived from the input's name and the command, so
    that `validate` and `apply` of one file never overwrite each other's."""
    if rejects is not None:
        return rejects
    name = source.path.resolve().name
    if source.kind != "sidecars":
        name = name.removesuffix(".gz").removesuffix(".GZ")
        name = name.rsplit(".", 1)[0] if "." in name else name
    return Path(f"{name}.{command}.rejects.jsonl")


def _progress_factory(source: _Source, quiet: bool, every: float) -> Callable[[str], Progress]:
    total = None if quiet else count_records(source.path, source.kind)
    return lambda label: Progress(label, total, quiet=quiet, interval=every)


def _key_types(client: Client, name: str) -> dict[str, str]:
    schema = client.schema(name)
    if schema.version == 0:
        raise NotFoundError(f'schema "{name}" does not exist')
    return {key: schema.get_key_type(key) for key in schema.keys(include_deleted=False)}


def _finish(summary: Summary, rejects: RejectsFile, order: tuple[str, ...], started: float) -> None:
    if not summary.read:
        echo_error("warning: the input holds no records")
    click.echo(summary.line(order, time.monotonic() - started))
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
    file: Path | None,
    sidecars: Path | None,
    file_format: str | None,
    rejects: Path | None,
    coerce_strings: bool,
    flatten_nested: bool,
    quiet: bool,
    progress_every: float,
    address: str,
    timeout: float,
) -> None:
    """Check every record of FILE (or --sidecars DIR) against schema NAME; write nothing.

    FILE is JSONL ({"data_unit_id": ..., "metadata": {...}} per line), CSV (a
    data_unit_id column and one column per key) or Parquet (the same columns). Every
    invalid record goes to the rejects file with its line and violations. Exit 1 if any
    record is invalid.
    """
    started = time.monotonic()
    source = _source(file, sidecars, file_format)
    flatten = flatten_nested or source.kind == "sidecars"
    with (
        connect(address, timeout) as client,
        RejectsFile(_rejects_path(source, "validate", rejects)) as rejected,
    ):
        key_types = _key_types(client, name)
        with _progress_factory(source, quiet, progress_every)("checking") as bar:
            summary = validate_records(
                client,
                name,
                # Without flattening, JSONL metadata goes to the server as the file has it.
                source.records(key_types, pass_through=not flatten),
                rejected,
                bar,
                coerce_strings=coerce_strings or source.kind == "csv",
                flatten_nested=flatten,
            )
    _finish(summary, rejected, ("valid", "invalid"), started)


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
    help="Apply the valid records and reject the invalid ones, instead of applying "
    "nothing unless every record is valid.",
)
@click.option(
    "--new-run",
    is_flag=True,
    help="Apply the file again as a new run, even where the same command applied the "
    "same requests within the server's idempotency window (24 h by default).",
)
@address_options
@reports_errors
def apply(
    name: str,
    file: Path | None,
    sidecars: Path | None,
    file_format: str | None,
    rejects: Path | None,
    coerce_strings: bool,
    flatten_nested: bool,
    quiet: bool,
    progress_every: float,
    mode: str,
    partial: bool,
    new_run: bool,
    address: str,
    timeout: float,
) -> None:
    """Apply the records of FILE (or --sidecars DIR) to schema NAME.

    Without --partial the whole input is checked first and nothing is written unless
    every record is valid; every invalid record goes to the rejects file. With --partial
    the valid records apply and the invalid ones are rejected. Records go in requests of
    1000, each one transaction whose idempotency key comes from this command and the
    request's content: if a run is interrupted, killed or loses its server, run the
    same command again and nothing is applied twice. Exit 1 if any record was
    rejected or not applied, 3 if the server could not be reached.
    """
    started = time.monotonic()
    source = _source(file, sidecars, file_format)
    flatten = flatten_nested or source.kind == "sidecars"
    coerce = coerce_strings or source.kind == "csv"
    run = run_key(name, mode, partial=partial, coerce=coerce, flatten=flatten)
    if new_run:
        run = f"{run}:{uuid.uuid4().hex}"
    with (
        connect(address, timeout) as client,
        RejectsFile(_rejects_path(source, "apply", rejects)) as rejected,
    ):
        key_types = _key_types(client, name)
        summary = apply_records(
            client,
            name,
            # Without flattening, JSONL metadata goes to the server as the file has it.
            lambda: source.records(key_types, pass_through=not flatten),
            rejected,
            _progress_factory(source, quiet, progress_every),
            mode=mode,
            partial=partial,
            coerce_strings=coerce,
            flatten_nested=flatten,
            run=run,
        )
    order = ("applied", "unchanged", "rejected", "not_applied", "not_sent", "unknown")
    _finish(summary, rejected, order, started)


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
