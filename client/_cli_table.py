"""Records as an aligned text table for a terminal: a few columns, long values cut short.

The table is printed while records stream in, so column widths come from the first
rows; later values that do not fit are cut with "…".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ._results import StoredRecord

MAX_KEY_COLUMNS = 5
MAX_CELL_WIDTH = 32
ID_COLUMN = "data_unit_id"
GAP = "  "
_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def format_cell(value: object) -> str:
    """One value as short display text; an embedding becomes its size."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        if value and all(isinstance(v, float) for v in value):
            return f"<{len(value)} floats>"
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value).translate(_ESCAPES)


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def order_key(order_by: str | None) -> str:
    """The key named by an order_by text ("score desc" -> "score")."""
    text = (order_by or "").strip()
    head, _, tail = text.rpartition(" ")
    if head and tail.lower() in ("asc", "desc"):
        text = head.strip()
    return text.strip("`").removeprefix("metadata.")


def choose_columns(
    rows: Sequence[StoredRecord], order_by: str | None, wanted: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """(the key columns to show, the keys left out), from the first rows.

    Given `wanted` keys are shown as they are. Otherwise: the order key first, then the
    other keys by name, embeddings and lists last, at most MAX_KEY_COLUMNS of them.
    """
    if wanted:
        return list(wanted), []
    seen = {key for row in rows for key in row.metadata}
    first = order_key(order_by)

    def rank(key: str) -> tuple[int, str]:
        is_list = any(isinstance(row.metadata.get(key), list) for row in rows)
        return (0 if key == first else 2 if is_list else 1, key)

    keys = sorted(seen, key=rank)
    return keys[:MAX_KEY_COLUMNS], keys[MAX_KEY_COLUMNS:]


def _holds_numbers(key: str, rows: Sequence[StoredRecord]) -> bool:
    values = [row.metadata[key] for row in rows if row.metadata.get(key) is not None]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


class RecordTable:
    """Fixed columns and widths, set from the first rows; then one line per record."""

    def __init__(self, keys: Sequence[str], first_rows: Sequence[StoredRecord]) -> None:
        self.keys = list(keys)
        headers = [ID_COLUMN, *self.keys]
        cells = [self._cells(row) for row in first_rows]
        self.widths = [
            min(max([len(h), *(len(c[i]) for c in cells)]), max(MAX_CELL_WIDTH, len(h)))
            for i, h in enumerate(headers)
        ]
        # A column of numbers reads best right-aligned.
        self.numeric = [False, *(_holds_numbers(key, first_rows) for key in self.keys)]

    def _cells(self, row: StoredRecord) -> list[str]:
        return [row.data_unit_id, *(format_cell(row.metadata.get(key)) for key in self.keys)]

    def _line(self, cells: Iterable[str]) -> str:
        parts = [
            fit(cell, width).rjust(width) if numeric else fit(cell, width).ljust(width)
            for cell, width, numeric in zip(cells, self.widths, self.numeric, strict=True)
        ]
        return GAP.join(parts).rstrip()

    def header(self) -> list[str]:
        return [
            self._line([ID_COLUMN, *self.keys]),
            GAP.join("-" * width for width in self.widths),
        ]

    def row(self, record: StoredRecord) -> str:
        return self._line(self._cells(record))
