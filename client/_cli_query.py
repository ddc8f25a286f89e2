"""`metareg metadata query`, `count` and `values`: find records by a filter, count them,
list the values a key holds.

Records are printed as they arrive, one page per request, so memory stays flat however
many match. A filter or --order-by that the server rejects is a usage error (exit 2):
the message echoes the text with a caret under the column the server named.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from typing import TextIO

import click

from ._cli_common import EXIT_OK, EXIT_USAGE, address_options, connect, echo_error, reports_errors
from ._cli_table import GAP, MAX_CELL_WIDTH, RecordTable, choose_columns, fit, format_cell
from ._errors import InvalidArgumentError
from ._query import QueryResults, ValueCounts

TABLE_SAMPLE_ROWS = 50
"""Rows read before a table is printed, to size its columns."""


@contextmanager
def filter_errors_are_usage_errors(filter_text: str, order_by: str = "") -> Iterator[None]:
    """Report a rejected filter or ordering with a caret under the column; exit 2."""
    try:
        yield
    except InvalidArgumentError as error:
        position = error.query_error
        if position is None:
            raise
        if position.field == "order_by":
            text, what = order_by, "--order-by"
        else:
            text, what = filter_text, "FILTER"
        echo_error(f"error: invalid {what} at column {position.column}: {position.problem}")
        line, caret = position.pointer(text)
        echo_error(f"  {line}")
        echo_error(f"  {caret}")
        sys.exit(EXIT_USAGE)


@contextmanager
def stops_quietly_on_a_closed_pipe() -> Iterator[None]:
    """`metareg metadata query … | head` is not an error: stop reading and exit 0."""
    try:
        yield
    except BrokenPipeError:
        # Python would report the failed flush of stdout at exit; point it at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_OK)


def _print_jsonl(results: QueryResults, out: TextIO) -> None:
    for page in results.pages():
        out.writelines(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in page)
        out.flush()  # each page as soon as it is read, not when the buffer fills


def _print_table(
    results: QueryResults, out: TextIO, order_by: str | None, columns: tuple[str, ...]
) -> None:
    first = list(islice(results, TABLE_SAMPLE_ROWS))
    if not first:
        out.write("no matching records\n")
        return
    keys, hidden = choose_columns(first, order_by, columns)
    table = RecordTable(keys, first)
    out.writelines(line + "\n" for line in [*table.header(), *map(table.row, first)])
    shown = len(first)
    for page in results.pages():
        out.writelines(table.row(record) + "\n" for record in page)
        out.flush()
        shown += len(page)
    out.write(f"{shown} record(s)\n")
    if hidden:
        out.write(f"not shown: {', '.join(hidden)} (use --columns KEY,KEY or --format jsonl)\n")


@click.command()
@click.argument("name")
@click.argument("filter_text", metavar="[FILTER]", default="")
@click.option(
    "--order-by",
    metavar="'KEY [asc|desc]'",
    default=None,
    help="Sort by a key (records without it come last) [default: by data_unit_id].",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after N records.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "table"]),
    default="jsonl",
    show_default=True,
    help="jsonl: the apply format, one record per line; table: aligned columns to read.",
)
@click.option(
    "--columns",
    metavar="KEY,KEY",
    default=None,
    help="Table columns after data_unit_id [default: the order key, then up to 5 keys "
    "of the first records].",
)
@address_options
@reports_errors
def query(
    name: str,
    filter_text: str,
    order_by: str | None,
    limit: int | None,
    output_format: str,
    columns: str | None,
    address: str,
    timeout: float,
) -> None:
    """Print the records of schema NAME that FILTER matches (every record without one).

    Output streams page by page. Exit 2 if the server rejects FILTER or the ordering.

    \b
    FILTER examples (keywords are case-insensitive; strings in quotes):
      camera_id = "cam-1" AND score >= 0.5
      weather IN ("rain", "snow") OR NOT night EXISTS
      notes ~ "blur"                  (contains, case-insensitive)
      `odd key name` != 3             (backquotes for other key names)
    """
    wanted = tuple(c.strip() for c in (columns or "").split(",") if c.strip())
    out = sys.stdout
    with (
        connect(address, timeout) as client,
        filter_errors_are_usage_errors(filter_text, order_by or ""),
        stops_quietly_on_a_closed_pipe(),
    ):
        results = client.query(name, filter_text, order_by=order_by, limit=limit)
        if output_format == "table":
            _print_table(results, out, order_by, wanted)
        else:
            _print_jsonl(results, out)
        out.flush()


@click.command()
@click.argument("name")
@click.argument("filter_text", metavar="[FILTER]", default="")
@address_options
@reports_errors
def count(name: str, filter_text: str, address: str, timeout: float) -> None:
    """Print how many records of schema NAME match FILTER (all of them without one).

    Exit 2 if the server rejects FILTER.
    """
    with connect(address, timeout) as client, filter_errors_are_usage_errors(filter_text):
        click.echo(client.count(name, filter_text))


@click.command()
@click.argument("name")
@click.argument("key")
@click.option("--prefix", default="", help="Only values that start with this text (string keys).")
@click.option(
    "--filter", "filter_text", metavar="FILTER", default="", help="Count only matching records."
)
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Values shown."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "jsonl"]),
    default="table",
    show_default=True,
    help='table: value and count columns; jsonl: {"value": …, "count": …} per line.',
)
@address_options
@reports_errors
def values(
    name: str,
    key: str,
    prefix: str,
    filter_text: str,
    limit: int,
    output_format: str,
    address: str,
    timeout: float,
) -> None:
    """Print the distinct values KEY holds in schema NAME, with how many records hold each,
    most frequent first.

    For varchar, enum, uuid, boolean and number keys. Exit 2 if the server rejects
    FILTER, 1 if it rejects the key or the prefix.
    """
    with connect(address, timeout) as client, filter_errors_are_usage_errors(filter_text):
        counts = client.values(name, key, prefix=prefix, filter=filter_text, limit=limit)
    with stops_quietly_on_a_closed_pipe():
        _print_values(counts, output_format, sys.stdout)
        sys.stdout.flush()


def _print_values(counts: ValueCounts, output_format: str, out: TextIO) -> None:
    if output_format == "jsonl":
        out.writelines(
            json.dumps({"value": value, "count": n}, ensure_ascii=False) + "\n"
            for value, n in counts
        )
        return
    if not counts:
        out.write("no values\n")
        return
    cells = [(format_cell(value), str(n)) for value, n in counts]
    width = min(max(len("value"), *(len(v) for v, _ in cells)), MAX_CELL_WIDTH * 2)
    count_width = max(len("count"), *(len(n) for _, n in cells))
    out.write(f"{'value'.ljust(width)}{GAP}{'count'.rjust(count_width)}\n")
    out.write(f"{'-' * width}{GAP}{'-' * count_width}\n")
    out.writelines(f"{fit(v, width).ljust(width)}{GAP}{n.rjust(count_width)}\n" for v, n in cells)
    if counts.more:
        out.write(f"more values than the {len(counts)} shown (raise --limit, up to 1000)\n")
