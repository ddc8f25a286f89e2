"""Single edits from the command line: delete records, patch the records a filter matches,
and add, delete or restore one schema key.

`metadata delete` and `metadata update-where` join the `metadata` group, and
`schema add-key`, `delete-key` and `restore-key` the `schema` group (see cli.py).
Exit codes as everywhere (see `_cli_common`): a rejected filter exits 2, like a
malformed --set or a missing option; what the server refuses exits 1.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TextIO

import click

from ._cli_common import (
    EXIT_REJECTED,
    address_options,
    connect,
    echo_error,
    fail,
    reports_errors,
)
from ._cli_query import filter_errors_are_usage_errors
from ._errors import NotFoundError
from ._schema import SCALAR_TYPES, TYPE_ALIASES, MetadataSchema

KEY_TYPES = (*SCALAR_TYPES, *TYPE_ALIASES, "enum", "embedding")
UPDATE_MODES = ("merge", "replace", "keep_existing")


# --- metadata delete -------------------------------------------------------------------


def _ids(ids: tuple[str, ...], ids_from: TextIO | None) -> list[str]:
    """The ids of the command line, then those of the file (one a line, blank lines
    skipped), each once."""
    found = list(ids)
    if ids_from is not None:
        found += [line.strip() for line in ids_from if line.strip()]
    if not found:
        raise click.UsageError("give the data unit IDs to delete, or --ids-from FILE")
    return list(dict.fromkeys(found))


@click.command()
@click.argument("name")
@click.argument("ids", nargs=-1)
@click.option(
    "--ids-from",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Also delete the ids in this file, one a line ('-' reads stdin).",
)
@address_options
@reports_errors
def delete(
    name: str, ids: tuple[str, ...], ids_from: TextIO | None, address: str, timeout: float
) -> None:
    """Delete the whole records of the given data unit IDS in schema NAME.

    Prints how many records were deleted. Exit 1 if any of the ids had no record (as
    `metadata get` does); the ids that had one are deleted all the same.
    """
    wanted = _ids(ids, ids_from)
    with connect(address, timeout) as client:
        deleted = client.delete_metadata(name, wanted)
    click.echo(f"deleted {deleted} record(s)")
    if deleted < len(wanted):
        echo_error(f"{len(wanted) - deleted} of the {len(wanted)} id(s) had no record")
        sys.exit(EXIT_REJECTED)


# --- metadata update-where -------------------------------------------------------------


def _patch(text: str) -> dict[str, object]:
    try:
        patch = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--set") from None
    if not isinstance(patch, dict):
        raise click.BadParameter(
            "must be a JSON object of key -> value, e.g. '{\"score\": 1}'", param_hint="--set"
        )
    return patch


def quoted_key(key: str) -> str:
    """A key name as the filter language reads any name: in backquotes."""
    return "`" + key.replace("\\", "\\\\").replace("`", "\\`") + "`"


def every_record_filter(schema: MetadataSchema) -> str:
    """A filter that matches every record of the schema (the server needs one)."""
    keys = schema.keys()
    if not keys:
        raise click.UsageError(f'schema "{schema.name}" has no active key to build a filter on')
    key = quoted_key(keys[0])
    return f"{key} EXISTS OR NOT {key} EXISTS"


@click.command("update-where")
@click.argument("name")
@click.option(
    "--filter",
    "filter_text",
    metavar="FILTER",
    default=None,
    help="The records to patch, in the filter language of `metadata query`.",
)
@click.option("--all", "every", is_flag=True, help="Patch every record of NAME (no --filter).")
@click.option(
    "--set",
    "patch",
    metavar="JSON",
    required=True,
    help='The patch, a JSON object: \'{"reviewed": true, "notes": null}\'.',
)
@click.option(
    "--mode",
    type=click.Choice(UPDATE_MODES),
    default="merge",
    show_default=True,
    help="merge: set keys (null removes one); replace: each record becomes these keys; "
    "keep_existing: only add absent keys.",
)
@click.option(
    "--dry-run", is_flag=True, help="Count the matches and check the patch; write nothing."
)
@address_options
@reports_errors
def update_where(
    name: str,
    filter_text: str | None,
    every: bool,
    patch: str,
    mode: str,
    dry_run: bool,
    address: str,
    timeout: float,
) -> None:
    """Apply the --set patch to every record of schema NAME that --filter matches, in
    one transaction.

    --filter is required; to patch every record say --all instead. If the patch would
    make any match invalid, nothing is written (exit 1). At most 50,000 matches per
    run. Exit 2 if the server rejects the filter.
    """
    if every == (filter_text is not None):
        raise click.UsageError("give either --filter FILTER or --all (to patch every record)")
    if filter_text is not None and not filter_text.strip():
        raise click.UsageError("--filter is empty; to patch every record say --all")
    values = _patch(patch)
    with connect(address, timeout) as client:
        if filter_text is None:  # --all
            found = client.schema(name)
            if found.version == 0:
                raise NotFoundError(f'schema "{name}" does not exist')
            filter_text = every_record_filter(found)
        with filter_errors_are_usage_errors(filter_text):
            if dry_run:
                matched = client.count(name, filter_text)
                # Checks the patch against every match, as the real run would.
                client.update_by_filter(name, filter_text, values, mode=mode, validate_only=True)
                click.echo(f"dry run: {matched} record(s) match; nothing written")
                return
            result = client.update_by_filter(name, filter_text, values, mode=mode)
    click.echo(f"matched {result.matched_count}, updated {result.updated_count}")


# --- schema add-key, delete-key, restore-key ----------------------------------------------


def _latest(
    client_schema: MetadataSchema, expected_version: int | None, *, must_exist: bool
) -> MetadataSchema:
    if must_exist and client_schema.version == 0:
        raise NotFoundError(f'schema "{client_schema.name}" does not exist')
    if expected_version is not None and client_schema.version != expected_version:
        fail(
            f'schema "{client_schema.name}" is at version {client_schema.version}, not '
            f"{expected_version} (--expected-version); nothing changed"
        )
    return client_schema


def _save(found: MetadataSchema, force: bool) -> None:
    before = found.version
    change = "; ".join(found.pending_changes)
    after = found.save(force=force)
    if after == before:
        click.echo(f"{found.name}: nothing to change ({change}); still version {after}")
    else:
        click.echo(f"{found.name}: version {after} ({change})")


def _options_list(values: str) -> list[str]:
    options = [v.strip() for v in values.split(",") if v.strip()]
    if not options:
        raise click.BadParameter("name at least one option", param_hint="--values")
    return options


@dataclass(frozen=True)
class KeyOptions:
    """The options of `schema add-key` beyond the type's own."""

    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    required: bool = False
    description: str = ""


_TYPE_OPTIONS = {"varchar": {"--max-length", "--pattern"}, "string": {"--max-length", "--pattern"},
                 "text": {"--pattern"}, "long_string": {"--pattern"},
                 "number": {"--minimum", "--maximum"}, "embedding": {"--size"},
                 "enum": {"--values"}}  # fmt: skip


def _queue_key(
    found: MetadataSchema,
    key: str,
    key_type: str,
    max_length: int | None,
    size: int | None,
    values: str | None,
    extra: KeyOptions,
) -> None:
    kind = key_type.lower()
    given = {"--max-length": max_length, "--size": size, "--values": values,
             "--minimum": extra.minimum, "--maximum": extra.maximum,
             "--pattern": extra.pattern}  # fmt: skip
    wanted = _TYPE_OPTIONS.get(kind, set())
    stray = [
        option for option, value in given.items() if value is not None and option not in wanted
    ]
    if stray:
        raise click.UsageError(f"{stray[0]} does not apply to a {kind} key")
    if kind == "enum":
        if values is None:
            raise click.UsageError("an enum key needs --values a,b,c")
        found.add_enum(key, _options_list(values), required=extra.required,
                       description=extra.description)  # fmt: skip
    elif kind == "embedding":
        if size is None:
            raise click.UsageError("an embedding key needs --size N")
        found.add_embedding(key, size, required=extra.required, description=extra.description)
    else:
        found.add_scalar(key, kind, max_length=max_length, minimum=extra.minimum,
                         maximum=extra.maximum, pattern=extra.pattern,
                         required=extra.required, description=extra.description)  # fmt: skip


expected_version_option = click.option(
    "--expected-version",
    type=click.IntRange(min=0),
    default=None,
    help="Refuse unless the schema is at this version (0: it does not exist yet).",
)
force_option = click.option(
    "--force", is_flag=True, help="Apply even if stored values become invalid (they are removed)."
)


@click.command("add-key")
@click.argument("name")
@click.argument("key")
@click.argument("key_type", metavar="TYPE", type=click.Choice(KEY_TYPES, case_sensitive=False))
@click.option("--max-length", type=click.IntRange(min=1), default=None, help="For varchar.")
@click.option("--size", type=click.IntRange(min=1), default=None, help="For embedding.")
@click.option("--values", metavar="A,B,C", default=None, help="For enum: its options.")
@click.option("--minimum", type=float, default=None, help="For number: the smallest value.")
@click.option("--maximum", type=float, default=None, help="For number: the largest value.")
@click.option(
    "--pattern", metavar="RE2", default=None, help="For varchar and text: a regular expression."
)
@click.option("--required", is_flag=True, help="Every record must hold the key.")
@click.option("--description", metavar="TEXT", default="", help="What the key means.")
@expected_version_option
@force_option
@address_options
@reports_errors
def add_key(
    name: str,
    key: str,
    key_type: str,
    max_length: int | None,
    size: int | None,
    values: str | None,
    minimum: float | None,
    maximum: float | None,
    pattern: str | None,
    required: bool,
    description: str,
    expected_version: int | None,
    force: bool,
    address: str,
    timeout: float,
) -> None:
    """Declare KEY of TYPE in schema NAME (created if it does not exist); print the new
    version.

    TYPE is varchar (--max-length, default 8192), text, number, boolean, datetime, uuid,
    enum (--values) or embedding (--size); string and long_string are varchar and text.
    Constraints: --minimum and --maximum (inclusive) for number, --pattern (RE2, found
    anywhere in a value: anchor it with ^ and $) for varchar and text, --required for
    any type. Exit 1 if the server refuses the key, or if stored records would become
    invalid (an undeclared key of that name, or records without a required key) and
    --force is not given.
    """
    extra = KeyOptions(minimum, maximum, pattern, required, description)
    with connect(address, timeout) as client:
        found = _latest(client.schema(name), expected_version, must_exist=False)
        _queue_key(found, key, key_type, max_length, size, values, extra)
        _save(found, force)


@click.command("delete-key")
@click.argument("name")
@click.argument("key")
@click.option(
    "--hard",
    is_flag=True,
    help="Purge the key's stored values and reserve its name forever (needs --force).",
)
@click.option("--force", is_flag=True, help="Confirm --hard.")
@expected_version_option
@address_options
@reports_errors
def delete_key(
    name: str,
    key: str,
    hard: bool,
    force: bool,
    expected_version: int | None,
    address: str,
    timeout: float,
) -> None:
    """Delete KEY from schema NAME; print the new version.

    A soft delete (the default) hides the key's values; `restore-key` brings them back.
    --hard cannot be undone, and so needs --force too.
    """
    if hard and not force:
        raise click.UsageError(
            "--hard purges the values of the key and reserves its name forever; add --force"
        )
    with connect(address, timeout) as client:
        found = _latest(client.schema(name), expected_version, must_exist=True)
        found.delete_key(key, hard=hard)
        _save(found, force)


@click.command("restore-key")
@click.argument("name")
@click.argument("key")
@expected_version_option
@address_options
@reports_errors
def restore_key(
    name: str, key: str, expected_version: int | None, address: str, timeout: float
) -> None:
    """Restore soft-deleted KEY of schema NAME, and its values; print the new version."""
    with connect(address, timeout) as client:
        found = _latest(client.schema(name), expected_version, must_exist=True)
        found.restore_key(key)
        _save(found, False)
