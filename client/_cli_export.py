"""`metareg metadata export`: write the records a filter matches to a file apply reads.

Records stream page by page into FILE.partial, which is renamed to FILE once complete;
a failed or interrupted export leaves no FILE. A filter the server rejects is a usage
error (exit 2), as in `metadata query`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from ._cli_common import address_options, connect, reports_errors
from ._cli_query import filter_errors_are_usage_errors
from ._export import EXPORT_FORMATS, ExportFormat, export_format, export_records, format_for


def _format_of(output: Path, chosen: str | None) -> ExportFormat:
    if chosen is not None:
        return format_for(output, chosen)
    found = export_format(output)
    if found is None:
        raise click.UsageError(
            f"{output}: cannot tell the format from the name; use .jsonl, .ndjson, .csv "
            "(also .gz) or .parquet, or --format"
        )
    return found


@click.command()
@click.argument("name")
@click.option(
    "--filter",
    "filter_text",
    metavar="FILTER",
    default="",
    help="Export only the records FILTER matches (the `metadata query` language) "
    "[default: every record].",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(EXPORT_FORMATS),
    default=None,
    help="File format [default: from the name: .jsonl, .ndjson, .csv (also .gz), .parquet].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The file to write (replaced if it exists, once the export is complete).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@address_options
@reports_errors
def export(
    name: str,
    filter_text: str,
    file_format: str | None,
    output: Path,
    quiet: bool,
    address: str,
    timeout: float,
) -> None:
    """Write the records of schema NAME to a JSONL, CSV or Parquet file.

    The file is what `metareg metadata apply` reads: applying it to a schema of the
    same definition recreates the records. CSV and Parquet have a column per key of
    the schema. Exit 2 if the server rejects FILTER.
    """
    kind = _format_of(output, file_format)
    with connect(address, timeout) as client, filter_errors_are_usage_errors(filter_text):
        total = client.count(name, filter_text)
        with tqdm(
            total=total,
            unit="rec",
            unit_scale=True,
            dynamic_ncols=True,
            smoothing=0.1,
            disable=True if quiet else None,  # None: only on a terminal
            file=sys.stderr,
        ) as bar:
            written = export_records(
                client, name, output, filter=filter_text, format=kind, progress=bar
            )
    click.echo(f"exported {written} records to {output}")
