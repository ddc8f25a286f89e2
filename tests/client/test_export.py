"""`metareg metadata export` (the real executable, the real server) and Client.export:
every format round-trips through `metareg metadata apply`, filters, paging, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
import pytest

from metareg.client import Client

from ..conftest import RunningServer
from .conftest import CallRecorder
from .test_cli import metareg

SCHEMA = """\
camera_id: {type: varchar, max_length: 32}
notes: text
score: number
night: boolean
taken_at: datetime
weather: {type: enum, values: [sun, rain, "snow, wet"]}
clip: {type: embedding, size: 3}
"""
RECORDS: dict[str, dict[str, object]] = {
    "u01": {
        "camera_id": "cam-1",
        "notes": 'commas, "quotes",\nnew lines and «ünïcode» 🎥',
        "score": 0.1,
        "night": True,
        "taken_at": "2024-05-01T12:30:00Z",
        "weather": "snow, wet",
        "clip": [0.1, -2.5, 3.25],
    },
    "u02": {"camera_id": "cam-2", "score": 1e-300, "night": False},
    "u03": {"taken_at": "1999-12-31T23:59:59.123456+02:00", "clip": [1e-7, 0.0, -0.0]},
    "u04": {"score": -2.5e10, "weather": "rain"},
    "u05": {},
    "u06": {"score": 3.0, "notes": "  leading and trailing spaces  ", "camera_id": "x"},
    "dir/with space/ü": {"night": True, "score": 0.5, "weather": "sun"},
}
SUFFIXES = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet", "csv.gz": ".csv.gz"}


@pytest.fixture
def two_schemas(server: RunningServer, tmp_path: Path) -> RunningServer:
    """`src` holding RECORDS and `dst`, of the same definition, empty."""
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    for name in ("src", "dst"):
        done = metareg(server, "schema", "import", name, "schema.yaml", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    with Client(server.address) as client:
        client.apply("src", RECORDS)
    return server


def stored(server: RunningServer, schema: str) -> dict[str, dict[str, object]]:
    with Client(server.address) as client:
        ids = [record.data_unit_id for record in client.query(schema)]
        return client.get_metadata(schema, ids)


@pytest.mark.parametrize("kind", SUFFIXES)
def test_every_format_round_trips_through_apply(
    two_schemas: RunningServer, tmp_path: Path, kind: str
) -> None:
    name = "out" + SUFFIXES[kind]
    done = metareg(two_schemas, "metadata", "export", "src", "-o", name, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"exported {len(RECORDS)} records to {name}\n"
    assert not list(tmp_path.glob("*.partial"))
    applied = metareg(two_schemas, "metadata", "apply", "dst", name, "-q", cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    source = stored(two_schemas, "src")
    assert len(source) == len(RECORDS)
    assert stored(two_schemas, "dst") == source
    assert source["u05"] == {}
    assert source["u02"] == {
        "camera_id": "cam-2",
        "score": 1e-300,
        "night": False,
    }


def test_the_files_are_the_documented_apply_formats(
    two_schemas: RunningServer, tmp_path: Path
) -> None:
    for name in ("out.jsonl", "out.csv", "out.parquet"):
        done = metareg(two_schemas, "metadata", "export", "src", "-o", name, "-q", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[0] == (
        '{"data_unit_id":"dir/with space/ü","metadata":{"night":true,"score":0.5,"weather":"sun"}}'
    )  # compact, UTF-8, in data_unit_id order
    csv_lines = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()
    assert csv_lines[0] == "data_unit_id,camera_id,clip,night,notes,score,taken_at,weather"
    assert csv_lines[1] == "dir/with space/ü,,,true,,0.5,,sun"
    assert "u02,cam-2,,false,,1e-300,," in csv_lines
    assert 'u03,,"[1e-07,0.0,-0.0]",,,,1999-12-31T21:59:59.123456Z,' in csv_lines
    table = pq.read_table(tmp_path / "out.parquet")
    assert str(table.schema.field("taken_at").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("clip").type) == "list<element: float>"
    assert table.column("data_unit_id").to_pylist()[:2] == ["dir/with space/ü", "u01"]


def test_filter_exports_only_the_matches(two_schemas: RunningServer, tmp_path: Path) -> None:
    done = metareg(
        two_schemas, "metadata", "export", "src", "--filter", "score >= 0.5", "-o", "m.csv",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "exported 2 records to m.csv\n"
    applied = metareg(two_schemas, "metadata", "apply", "dst", "m.csv", "-q", cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    source = stored(two_schemas, "src")
    expected = {i: source[i] for i in ("dir/with space/ü", "u06")}
    assert stored(two_schemas, "dst") == expected


def test_a_rejected_filter_is_a_usage_error_and_writes_no_file(
    two_schemas: RunningServer, tmp_path: Path
) -> None:
    done = metareg(
        two_schemas, "metadata", "export", "src", "--filter", "score >>= 1", "-o", "x.jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid FILTER at column ")
    assert done.stderr.splitlines()[1] == "  score >>= 1"
    assert not (tmp_path / "x.jsonl").exists()
    assert not (tmp_path / "x.jsonl.partial").exists()


def test_an_unknown_file_name_is_a_usage_error(two_schemas: RunningServer, tmp_path: Path) -> None:
    done = metareg(two_schemas, "metadata", "export", "src", "-o", "out.txt", cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot tell the format from the name" in done.stderr
    forced = metareg(
        two_schemas, "metadata", "export", "src", "-o", "out.txt", "--format", "jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert len((tmp_path / "out.txt").read_text().splitlines()) == len(RECORDS)


def test_a_failed_export_keeps_the_old_file_and_leaves_no_partial(
    two_schemas: RunningServer, tmp_path: Path
) -> None:
    with Client(two_schemas.address) as client:
        client.apply("src", {"u07": {"keyframes": [1, 5]}})  # no CSV column holds it
    (tmp_path / "out.csv").write_text("the previous export\n")
    done = metareg(two_schemas, "metadata", "export", "src", "-o", "out.csv", cwd=tmp_path)
    assert done.returncode == 1
    assert 'record "u07" has key(s) keyframes' in done.stderr
    assert "export it as JSONL" in done.stderr
    assert (tmp_path / "out.csv").read_text() == "the previous export\n"
    assert not (tmp_path / "out.csv.partial").exists()
    as_jsonl = metareg(two_schemas, "metadata", "export", "src", "-o", "out.jsonl", cwd=tmp_path)
    assert as_jsonl.returncode == 0, as_jsonl.stderr
    assert '{"data_unit_id":"u07","metadata":{"keyframes":[1,5]}}' in (
        (tmp_path / "out.jsonl").read_text().splitlines()
    )


def test_a_missing_schema_is_an_error(server: RunningServer, tmp_path: Path) -> None:
    done = metareg(server, "metadata", "export", "nope", "-o", "x.jsonl", cwd=tmp_path)
    assert done.returncode == 1
    assert 'schema "nope" does not exist' in done.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_many_records_are_paged_and_every_one_exported_once(
    server: RunningServer, client: Client, recorder: CallRecorder, tmp_path: Path
) -> None:
    client.import_schema_from_dict("big", {"n": "number", "tag": "varchar"})
    with client.bundle("big", keep_results=False) as bundle:
        for i in range(5000):
            bundle.update(f"r{i:05}", {"n": float(i), "tag": "even" if i % 2 == 0 else "odd"})
    done = metareg(server, "metadata", "export", "big", "-o", "big.jsonl", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "exported 5000 records to big.jsonl\n"
    lines = (tmp_path / "big.jsonl").read_text().splitlines()
    assert len(lines) == client.count("big") == 5000
    ids = [json.loads(line)["data_unit_id"] for line in lines]
    assert ids == [f"r{i:05}" for i in range(5000)]  # none skipped or repeated

    recorder.calls.clear()
    pages: list[int] = []
    path = tmp_path / "odd.parquet"
    assert client.export("big", path, filter='tag = "odd"', progress=pages.append) == 2500
    assert pages == [1000, 1000, 500]  # one QueryMetadata page at a time, as written
    assert recorder.methods("QueryMetadata") == ["QueryMetadata"] * 3
    assert pq.ParquetFile(path).num_row_groups == 3  # one row group per page
    assert pq.read_table(path).column("n").to_pylist() == [float(i) for i in range(1, 5000, 2)]
