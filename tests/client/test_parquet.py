"""client._parquet without a server: typed columns, row groups, streaming reads, no pyarrow."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
import pytest

from metareg.client import DataFileError
from metareg.client._parquet import count_rows, read_parquet, write_parquet

KEY_TYPES = {
    "camera_id": "varchar",
    "notes": "text",
    "weather": "enum",
    "uid": "uuid",
    "score": "number",
    "night": "boolean",
    "taken_at": "datetime",
    "clip": "embedding",
    "later": "some_future_type",
}
FULL = {
    "camera_id": "cam-1",
    "notes": "line one\nline two, «quoted»",
    "weather": "rain",
    "uid": "0b5d2f7e-3c1a-4e9b-8f6d-2a7c9e1b4d30",
    "score": 0.1,
    "night": False,
    "taken_at": "2024-05-01T12:30:00.123456Z",
    "clip": [0.5, -1.25, 3.0],
    "later": {"nested": [1, 2]},
}


def test_columns_are_typed_by_the_schema_and_read_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    records = [
        ("u1", FULL),
        ("u2", {}),
        ("u3", {"night": True, "taken_at": "0001-01-01T00:00:00.000000Z"}),
    ]
    assert write_parquet(path, KEY_TYPES, records) == 3
    schema = pq.read_schema(path)
    assert schema.field("data_unit_id").type == pa.string()
    assert [schema.field(k).type for k in ("camera_id", "notes", "weather", "uid")] == [
        pa.string()
    ] * 4
    assert schema.field("score").type == pa.float64()
    assert schema.field("night").type == pa.bool_()
    assert schema.field("taken_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("clip").type == pa.list_(pa.float32())
    assert schema.field("later").type == pa.string()  # JSON text
    back = list(read_parquet(path))
    assert [(r.line, r.data_unit_id, r.metadata, r.error) for r in back] == [
        (1, "u1", FULL, ""),
        (2, "u2", {}, ""),  # null cells are absent keys
        (3, "u3", {"night": True, "taken_at": "0001-01-01T00:00:00.000000Z"}, ""),
    ]
    assert count_rows(path) == 3


def test_one_row_group_per_page_and_reads_stream_in_row_order(tmp_path: Path) -> None:
    path = tmp_path / "many.parquet"
    records = ((f"u{i:05}", {"score": float(i)}) for i in range(2500))
    assert write_parquet(path, {"score": "number"}, records, row_group_size=1000) == 2500
    assert pq.ParquetFile(path).num_row_groups == 3
    lines = [(r.line, r.data_unit_id, r.metadata["score"]) for r in read_parquet(path)]
    assert lines == [(i + 1, f"u{i:05}", float(i)) for i in range(2500)]


def test_an_empty_export_is_a_file_with_the_columns_and_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    assert write_parquet(path, {"score": "number"}, []) == 0
    assert pq.read_schema(path).names == ["data_unit_id", "score"]
    assert list(read_parquet(path)) == []


def test_a_key_that_is_no_column_fails_instead_of_being_dropped(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r'"u1" has key\(s\) keyframes .* export it as JSONL'):
        write_parquet(tmp_path / "x.parquet", {"score": "number"}, [("u1", {"keyframes": [1]})])


def test_files_of_other_writers_read_naive_and_nanosecond_timestamps_as_utc(
    tmp_path: Path,
) -> None:
    path = tmp_path / "other.parquet"
    table = pa.table(
        {
            "data_unit_id": pa.array(["a", None]),
            "at": pa.array([1_714_566_600_123_456_789, None], type=pa.timestamp("ns")),
            "count": pa.array([3, 4], type=pa.int64()),
        }
    )
    pq.write_table(table, path)
    first, second = read_parquet(path)
    assert first.metadata == {"at": "2024-05-01T12:30:00.123456Z", "count": 3}
    assert (second.line, second.error) == (2, '"data_unit_id" must be a string')


def test_files_without_an_id_column_or_not_parquet_are_data_file_errors(tmp_path: Path) -> None:
    pq.write_table(pa.table({"score": [1.0]}), tmp_path / "no_id.parquet")
    with pytest.raises(DataFileError, match='has no "data_unit_id" column'):
        list(read_parquet(tmp_path / "no_id.parquet"))
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(DataFileError, match="not a readable Parquet file"):
        list(read_parquet(tmp_path / "text.parquet"))


def test_without_pyarrow_both_functions_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    expected = r"pip install 'metareg\[parquet\]'"
    with pytest.raises(DataFileError, match=expected):
        write_parquet(tmp_path / "x.parquet", {"score": "number"}, [])
    with pytest.raises(DataFileError, match=expected):
        list(read_parquet(tmp_path / "x.parquet"))
    with pytest.raises(DataFileError, match=expected):
        count_rows(tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
