"""Apply the rows of a pandas DataFrame as metadata updates: one row, one update.

pandas is never imported: the frame is read through `columns` and `itertuples`, and
cells are recognised by what they are (numpy scalars by `dtype`, pandas' missing
markers by their type names). Cell rules:

- Missing cells (None, NaN, pd.NA, pd.NaT, numpy NaT) are absent keys, never null:
  a null would remove the key in merge mode, and a frame's holes mean "no value".
- numpy scalars become the Python values they hold (np.int64 -> int, np.bool_ -> bool…).
- pandas Timestamps and numpy datetime64 become `datetime` (to the microsecond, which
  is what the server stores); a naive one means UTC, as everywhere.
- Lists and 1-d numpy arrays (an embedding column) go as they are: vectors.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from ._bundle import UpdateModeName
from ._results import Outcome, UpdateResult

if TYPE_CHECKING:
    from ._client import Client

_MISSING_TYPES = frozenset({"NAType", "NaTType"})
"""The type names of pandas.NA and pandas.NaT."""


class DataFrameApplied(NamedTuple):
    """What `Client.apply_dataframe` returns: the bundle's per-row results, in row
    order (`index` is the row's position), and how many rows had each outcome."""

    results: list[UpdateResult]
    counts: Counter[Outcome]

    @property
    def applied(self) -> int:
        return self.counts[Outcome.APPLIED]

    @property
    def rejected(self) -> list[UpdateResult]:
        return [r for r in self.results if r.outcome is Outcome.REJECTED]


class _Absent:
    """The marker of a missing cell."""


ABSENT = _Absent()


def cell_value(value: object) -> object:
    """A cell as a metadata value, or ABSENT for a missing cell."""
    kind = type(value)
    if kind is str or kind is bool or kind is int:
        return value
    if kind is float:
        return ABSENT if value != value else value  # NaN
    if value is None or kind.__name__ in _MISSING_TYPES:
        return ABSENT
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(value, "ndim", None) == 0:  # a numpy scalar
        if getattr(dtype, "kind", "") == "M":  # datetime64, NaT included
            if value != value:
                return ABSENT
            value = value.astype("datetime64[us]")  # type: ignore[attr-defined]
        return cell_value(value.item())  # type: ignore[attr-defined]
    if isinstance(value, datetime):
        to_pydatetime = getattr(value, "to_pydatetime", None)
        if callable(to_pydatetime):  # a pandas Timestamp
            with warnings.catch_warnings():  # "Discarding nonzero nanoseconds"
                warnings.simplefilter("ignore", UserWarning)
                moment: datetime = to_pydatetime()
            return moment
        return value
    if isinstance(value, str):  # e.g. numpy.str_ reached here without a dtype
        return str(value)
    return value  # lists, arrays and the rest: the bundle's rules say what they are


def _columns(frame: Any) -> list[object]:
    columns = getattr(frame, "columns", None)
    if columns is None or not callable(getattr(frame, "itertuples", None)):
        raise TypeError(
            f"apply_dataframe needs a pandas DataFrame (columns and itertuples), "
            f"not a {type(frame).__name__}"
        )
    names = list(columns)
    doubled = sorted({str(c) for c in names if names.count(c) > 1})
    if doubled:
        raise ValueError(f"the DataFrame has more than one column named {', '.join(doubled)}")
    wrong = [c for c in names if not isinstance(c, str)]
    if wrong:
        raise ValueError(f"metadata keys are strings; the DataFrame has column {wrong[0]!r}")
    return names


def frame_rows(frame: Any, id_column: str) -> Iterator[tuple[str, dict[str, object]]]:
    """(data_unit_id, metadata) per row; missing cells are left out of the metadata.

    The frame's columns are checked at once (TypeError, ValueError), its rows as they
    are read."""
    columns = _columns(frame)
    from_index = False
    if id_column in columns:
        at = columns.index(id_column)
    elif getattr(getattr(frame, "index", None), "name", None) == id_column:
        from_index, at = True, 0
        columns = [id_column, *columns]
    else:
        shown = ", ".join(map(str, columns[:20])) or "none"
        raise ValueError(
            f'the DataFrame has no column "{id_column}" for the data unit ids (pass '
            f"id_column=...); its columns: {shown}"
        )
    keys: Sequence[str] = [str(c) for c in columns]
    return _rows(frame.itertuples(index=from_index, name=None), keys, at, id_column)


def _rows(
    tuples: Iterator[tuple[Any, ...]], keys: Sequence[str], at: int, id_column: str
) -> Iterator[tuple[str, dict[str, object]]]:
    for number, row in enumerate(tuples):
        data_unit_id = cell_value(row[at])
        if data_unit_id is ABSENT:
            raise ValueError(f'row {number} has no value in its "{id_column}" column')
        if not isinstance(data_unit_id, str):
            raise ValueError(
                f'row {number}: data unit ids are strings; "{id_column}" holds {data_unit_id!r}'
            )
        metadata: dict[str, object] = {}
        for position, key in enumerate(keys):
            if position == at:
                continue
            value = cell_value(row[position])
            if value is not ABSENT:
                metadata[key] = value
        yield data_unit_id, metadata


def apply_dataframe(
    client: Client,
    schema: str,
    frame: Any,
    id_column: str = "data_unit_id",
    *,
    mode: UpdateModeName | str = "merge",
    partial: bool = False,
) -> DataFrameApplied:
    """Apply each row of `frame` as one update of its `id_column` record (see
    `Client.apply_dataframe`)."""
    rows = frame_rows(frame, id_column)
    with client.bundle(schema, partial=partial) as bundle:
        for data_unit_id, metadata in rows:
            bundle.update(data_unit_id, metadata, mode=mode)
    return DataFrameApplied(bundle.results, Counter(bundle.counts))
