"""Metadata files: stream records from JSONL, CSV, Parquet or a folder of JSON sidecars.

JSONL: one `{"data_unit_id": ..., "metadata": {...}}` object per line (other fields,
such as those of a rejects file, are ignored). CSV: a `data_unit_id` column and one
column per key. CSV cells are text; embedding and `keyframes` cells are JSON lists and
are parsed here, number and boolean cells are sent as text for the server to convert
(the `coerce_strings` request flag), and an empty cell means "no value". Either format
may be gzip-compressed (`.gz`). Parquet (the `[parquet]` extra) is read one row group at
a time. A sidecar folder holds one JSON object per data unit: `images/photo_001.json`
is the metadata of data unit `images/photo_001`, nested objects flattened with dots.
An empty file, or a CSV file with only its header, holds no records (not an error).

With `pass_through`, a JSONL line's metadata is kept as the JSON bytes it was in the
file and sent as it is (the JSON record form), instead of being decoded into Python
values and encoded again; lines that are not plainly fine take the decoded path, which
reports what is wrong with them exactly as without it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

from ._errors import DataFileError, ValueConversionError
from ._source import ID_COLUMN, SourceRecord
from ._values import flatten

DataFormat = Literal["jsonl", "csv", "parquet", "sidecars"]
_SUFFIXES: dict[str, DataFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
}
MAX_CSV_FIELD = 64 * 1024 * 1024


def data_format(path: str | os.PathLike[str]) -> DataFormat | None:
    """jsonl or csv from the file name (ignoring a final .gz); None when unknown."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return _SUFFIXES.get(suffixes[-1]) if suffixes else None


def _open(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


@contextmanager
def _reading(path: str | os.PathLike[str], line: Callable[[], int]) -> Iterator[None]:
    """Turn what can go wrong while reading a file into one DataFileError naming it."""
    try:
        yield
    except UnicodeDecodeError as error:
        where = f"{path}, after line {line()}" if line() else str(path)
        raise DataFileError(f"{where}: not UTF-8 text ({error.reason})") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataFileError(f"{path}: not a readable gzip file ({error})") from None
    except csv.Error as error:
        raise DataFileError(f"{path}, line {line() + 1}: {error}") from None
    except OSError as error:
        raise DataFileError(f"{path}: cannot read the file: {error.strerror or error}") from None


def count_lines(path: str | os.PathLike[str]) -> int:
    """Lines in the file (for a progress total), read in blocks without decoding."""
    path = Path(path)
    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    count, last = 0, b"\n"
    with _reading(path, lambda: 0), opener(path, "rb") as stream:
        while block := stream.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _jsonl_record(line_number: int, line: str) -> SourceRecord | None:
    if not line.strip():
        return None
    text = line.rstrip("\r\n")
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        return SourceRecord(line_number, "", {}, f"not valid JSON: {error.msg}", text=text)
    except ValueError as error:  # an integer of more digits than Python converts
        return SourceRecord(line_number, "", {}, f"not valid JSON: {error}", text=text)
    except RecursionError:
        return SourceRecord(line_number, "", {}, "JSON nested too deeply", text=text)
    if not isinstance(item, dict):
        return SourceRecord(line_number, "", {}, "expected a JSON object", text=text)
    data_unit_id = item.get(ID_COLUMN)
    metadata = item.get("metadata", {})
    if not isinstance(data_unit_id, str):
        return SourceRecord(line_number, "", {}, '"data_unit_id" must be a string', text=text)
    if not isinstance(metadata, dict):
        return SourceRecord(
            line_number, data_unit_id, {}, '"metadata" must be an object', text=text
        )
    return SourceRecord(line_number, data_unit_id, metadata, text=text)


class _Line(msgspec.Struct):
    """A JSONL line with its metadata left undecoded; other fields are ignored."""

    data_unit_id: str
    metadata: msgspec.Raw = msgspec.Raw(b"{}")


_LINE = msgspec.json.Decoder(_Line)
# Number literals that a double may not hold: a 3-digit exponent, or 200 digits in a row
# (an integer part that long). msgspec does not range-check the numbers it skips, and
# the server refuses a whole request for one; such lines take the decoded path, which
# reports them as the line's reject. Text that merely looks like one costs only that.
# Checked on a copy with every digit folded to "0" (and "E" to "e"), where both are plain
# searches: a regex over the raw digits cost 35-75 us a record with an embedding, this
# about 3.5. An exponent counts only where its number can start: after JSON's ":", ","
# "[" or white space (and an optional "-"), so that the hex digits of a UUID ("3e12...")
# no longer send one line in ten down the decoded path.
_FOLDED = bytes.maketrans(b"123456789E", b"000000000e")
_EXPONENT = re.compile(rb"e[+-]?000")
_LONG_RUN = b"0" * 200
_MANTISSA = frozenset(b"0.")
_BEFORE_NUMBER = frozenset(b":,[ \t\r\n")


def _big_number(metadata: bytes) -> bool:
    folded = metadata.translate(_FOLDED)
    found = _EXPONENT.search(folded)
    while found is not None:
        start = found.start()
        if folded[start - 1 : start] == b"0" and _starts_number(folded, start - 1):
            return True
        found = _EXPONENT.search(folded, start + 1)
    return _LONG_RUN in folded


def _starts_number(folded: bytes, end: int) -> bool:
    """Whether the digits and dots that end at `end` are a JSON number's mantissa."""
    start = end
    while start > 0 and folded[start - 1] in _MANTISSA:
        start -= 1
    if start > 0 and folded[start - 1] == ord("-"):
        start -= 1
    return start == 0 or folded[start - 1] in _BEFORE_NUMBER


def _passed_through(line_number: int, line: str) -> SourceRecord | None:
    """The line with its metadata as JSON bytes; None unless that is plainly right."""
    try:
        item = _LINE.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    metadata = bytes(item.metadata)
    if metadata[:1] != b"{" or _big_number(metadata):
        return None
    text = line.rstrip("\r\n")
    return SourceRecord(line_number, item.data_unit_id, {}, metadata_json=metadata, text=text)


def read_jsonl(
    path: str | os.PathLike[str], *, pass_through: bool = False
) -> Iterator[SourceRecord]:
    number = 0
    with _reading(path, lambda: number), _open(Path(path)) as stream:
        for number, line in enumerate(stream, start=1):
            record = _passed_through(number, line) if pass_through else None
            if record is None:
                record = _jsonl_record(number, line)
            if record is not None:
                yield record


def _cell(text: str, is_list: bool) -> object:
    if is_list:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text  # the server rejects it with the offending value shown
    return text


def read_csv(
    path: str | os.PathLike[str], key_types: Mapping[str, str] | None = None
) -> Iterator[SourceRecord]:
    """Rows as records; `key_types` (key -> schema type) says which cells hold lists."""
    types = key_types or {}
    # A cell may hold a whole text value, and records may be 256 KiB: more than csv's
    # default field limit (128 KiB). Larger records are the server's to reject.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_FIELD))
    reader: Any = None
    with _reading(path, lambda: reader.line_num if reader else 0), _open(Path(path)) as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            return  # an empty file holds no records, as an empty JSONL file
        if ID_COLUMN not in header:
            raise DataFileError(f'{path}: the header has no "{ID_COLUMN}" column')
        duplicates = sorted({c for c in header if header.count(c) > 1})
        if duplicates:
            raise DataFileError(f"{path}: column(s) {', '.join(duplicates)} appear twice")
        id_at = header.index(ID_COLUMN)
        columns = [
            (i, name, name == "keyframes" or types.get(name) == "embedding")
            for i, name in enumerate(header)
            if i != id_at
        ]
        for row in reader:
            if not any(row):
                continue
            line = reader.line_num
            if len(row) != len(header):
                error = f"has {len(row)} cells; the header has {len(header)}"
                yield SourceRecord(line, "", {}, error, text=_csv_text(row))
                continue
            metadata = {
                name: _cell(row[i], is_list) for i, name, is_list in columns if row[i] != ""
            }
            yield SourceRecord(line, row[id_at], metadata, text=_csv_text(row))


def _csv_text(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue()


def _sidecar_files(folder: Path) -> list[Path]:
    with _reading(folder, lambda: 0):
        if not folder.is_dir():
            raise DataFileError(f"{folder}: not a folder")
        return sorted(p for p in folder.rglob("*.json") if p.is_file())


def _sidecar_metadata(text: str) -> tuple[str, dict[str, object]]:
    """(why the file cannot be a record, {}) or ("", its metadata flattened)."""
    try:
        item = json.loads(text)
    except json.JSONDecodeError as error:
        return f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})", {}
    except ValueError as error:
        return f"not valid JSON: {error}", {}
    except RecursionError:
        return "JSON nested too deeply", {}
    if not isinstance(item, dict):
        return "the file must hold one JSON object", {}
    try:
        return "", flatten(item)
    except ValueConversionError as error:
        return error.message, {}


def read_sidecars(folder: str | os.PathLike[str]) -> Iterator[SourceRecord]:
    """One record per `*.json` file under `folder`, in path order: its data unit is the
    relative path without `.json` (with `/`), its metadata the file's object, flattened."""
    folder = Path(folder)
    for number, file in enumerate(_sidecar_files(folder), start=1):
        relative = file.relative_to(folder).as_posix()
        data_unit_id = relative.removesuffix(".json")
        metadata: dict[str, object] = {}
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as bad:
            error, text = f"not UTF-8 text ({bad.reason})", ""
        except OSError as bad:
            error, text = f"cannot read the file: {bad.strerror or bad}", ""
        else:
            error, metadata = _sidecar_metadata(text)
        if error:
            yield SourceRecord(number, data_unit_id, {}, error, text=text, origin=relative)
            continue
        yield SourceRecord(number, data_unit_id, metadata, text=text, origin=relative)


def count_records(path: str | os.PathLike[str], kind: DataFormat) -> int:
    """About how many records the source holds, for a progress total."""
    if kind == "sidecars":
        return len(_sidecar_files(Path(path)))
    if kind == "parquet":
        from ._parquet import count_rows

        return count_rows(path)
    return max(count_lines(path) - (1 if kind == "csv" else 0), 0)


def read_records(
    path: str | os.PathLike[str],
    kind: DataFormat,
    key_types: Mapping[str, str] | None = None,
    *,
    pass_through: bool = False,
) -> Iterator[SourceRecord]:
    """Stream the records of a source (never the whole file in memory); `pass_through`
    keeps JSONL metadata as JSON bytes (see the module docstring)."""
    if kind == "csv":
        return read_csv(path, key_types)
    if kind == "sidecars":
        return read_sidecars(path)
    if kind == "parquet":
        from ._parquet import read_parquet

        return read_parquet(path)
    return read_jsonl(path, pass_through=pass_through)
