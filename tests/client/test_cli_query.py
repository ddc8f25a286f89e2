"""`metareg metadata query` and `count` through the real executable against a real server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from metareg.client import Client
from metareg.client._cli_table import choose_columns, format_cell, order_key
from metareg.client._results import StoredRecord

from ..conftest import RunningServer
from .test_cli import METAREG, metareg

RECORDS = 1200  # more than two pages of 500
NOTE = "a long note that goes on\nand on and on and on and on"


def record(i: int) -> dict[str, object]:
    metadata: dict[str, object] = {"camera_id": f"cam{i % 4}", "score": i / 100}
    if i % 3 == 0:
        metadata["notes"] = NOTE
    if i % 2 == 0:
        metadata["clip"] = [0.5, float(i), 2.0]
    return metadata


@pytest.fixture
def cams(server: RunningServer) -> RunningServer:
    with Client(server.address) as client:
        client.import_schema_from_dict(
            "cams",
            {"camera_id": {"type": "varchar", "indexed": True},
             "score": {"type": "number", "indexed": True}, "notes": "text",
             "clip": {"type": "embedding", "size": 3}},
        )  # fmt: skip
        client.apply("cams", {f"u{i:04d}": record(i) for i in range(RECORDS)})
    return server


def test_query_streams_jsonl_in_the_format_get_prints_and_apply_reads(
    cams: RunningServer, tmp_path: Path
) -> None:
    everything = metareg(cams, "metadata", "query", "cams", cwd=tmp_path)
    assert (everything.returncode, everything.stderr) == (0, "")
    lines = everything.stdout.splitlines()
    assert [json.loads(line)["data_unit_id"] for line in lines] == [
        f"u{i:04d}" for i in range(RECORDS)
    ]  # three pages, in data_unit_id order, nothing skipped or repeated
    got = metareg(cams, "metadata", "get", "cams", "u0003", cwd=tmp_path)
    assert lines[3] == got.stdout.strip()

    top = metareg(
        cams, "metadata", "query", "cams", "score >= 11.9 AND camera_id != 'cam0'",
        "--order-by", "score desc", "--limit", "4", cwd=tmp_path,
    )  # fmt: skip
    assert top.returncode == 0, top.stderr
    found = [json.loads(line) for line in top.stdout.splitlines()]
    assert [r["data_unit_id"] for r in found] == ["u1199", "u1198", "u1197", "u1195"]
    assert found[0] == {"data_unit_id": "u1199", "metadata": record(1199)}
    (tmp_path / "top.jsonl").write_text(top.stdout)
    again = metareg(cams, "metadata", "apply", "cams", "top.jsonl", "-q", cwd=tmp_path)
    assert again.stdout.startswith("applied 0, unchanged 4, rejected 0")


def test_count(cams: RunningServer, tmp_path: Path) -> None:
    total = metareg(cams, "metadata", "count", "cams", cwd=tmp_path)
    assert (total.returncode, total.stdout) == (0, f"{RECORDS}\n")
    some = metareg(cams, "metadata", "count", "cams", 'camera_id = "cam1" AND notes EXISTS',
                   cwd=tmp_path)  # fmt: skip
    assert some.stdout == f"{sum(1 for i in range(RECORDS) if i % 4 == 1 and i % 3 == 0)}\n"


def test_table_aligns_a_few_columns_and_shortens_values(
    cams: RunningServer, tmp_path: Path
) -> None:
    table = metareg(
        cams, "metadata", "query", "cams", "score > 11.94", "--order-by", "score desc",
        "--format", "table", cwd=tmp_path,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines() == [
        "data_unit_id  score  camera_id  notes                             clip",
        "------------  -----  ---------  --------------------------------  ----------",
        "u1199         11.99  cam3",
        "u1198         11.98  cam2                                         <3 floats>",
        "u1197         11.97  cam1       a long note that goes on\\nand o…",
        "u1196         11.96  cam0                                         <3 floats>",
        "u1195         11.95  cam3",
        "5 record(s)",
    ]
    chosen = metareg(
        cams, "metadata", "query", "cams", "score < 0.02", "--format", "table",
        "--columns", "clip,score", cwd=tmp_path,
    )  # fmt: skip
    assert chosen.stdout.splitlines() == [
        "data_unit_id  clip        score",
        "------------  ----------  -----",
        "u0000         <3 floats>      0",
        "u0001                      0.01",
        "2 record(s)",
    ]
    none = metareg(cams, "metadata", "query", "cams", "score > 99", "--format", "table",
                   cwd=tmp_path)  # fmt: skip
    assert (none.returncode, none.stdout) == (0, "no matching records\n")


def test_a_rejected_filter_is_a_usage_error_with_a_caret(
    cams: RunningServer, tmp_path: Path
) -> None:
    bad = metareg(cams, "metadata", "query", "cams", 'score > "high"', cwd=tmp_path)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.splitlines() == [
        'error: invalid FILTER at column 9: key "score" has type number; compare it with a '
        "number, not a string",
        '  score > "high"',
        "          ^",
    ]
    count = metareg(cams, "metadata", "count", "cams", "score >", cwd=tmp_path)
    assert count.returncode == 2
    assert count.stderr.splitlines()[1:] == ["  score >", "         ^"]
    order = metareg(cams, "metadata", "query", "cams", "--order-by", "clip", cwd=tmp_path)
    assert order.returncode == 2
    assert order.stderr.startswith("error: invalid --order-by at column 1: cannot order by")
    missing = metareg(cams, "metadata", "query", "nope", cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (
        1, 'error: NOT_FOUND: schema "nope" does not exist\n')  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_reader_that_stops_early_is_not_an_error(cams: RunningServer, tmp_path: Path) -> None:
    """`metareg metadata query … | head -1`: the closed pipe ends the command quietly."""
    env = {**os.environ, "METAREG_ADDRESS": cams.address}
    with subprocess.Popen(
        [str(METAREG), "metadata", "query", "cams"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, cwd=tmp_path,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        assert process.stderr is not None
        assert json.loads(process.stdout.readline())["data_unit_id"] == "u0000"
        process.stdout.close()
        stderr = process.stderr.read()
        assert process.wait(timeout=60) == 0
    assert stderr == b""


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, ""), (True, "true"), (95.0, "95"), (0.25, "0.25"), (1e20, "1e+20"),
     ([0.5, 1.5], "<2 floats>"), ([0, 4], "[0, 4]"), ("tab\there", "tab\\there")],
)  # fmt: skip
def test_cells(value: object, shown: str) -> None:
    assert format_cell(value) == shown


def test_the_order_key_comes_first_and_lists_last() -> None:
    assert [order_key(o) for o in ["score desc", " `odd key` ASC", "metadata.q", None]] == [
        "score", "odd key", "q", ""]  # fmt: skip
    rows = [StoredRecord("u1", {"b": 1.0, "clip": [0.5], "a": "x", "s": 2.0}),
            StoredRecord("u2", {f"k{i}": 1.0 for i in range(5)})]  # fmt: skip
    keys, hidden = choose_columns(rows, "s desc")
    assert (keys, hidden) == (["s", "a", "b", "k0", "k1"], ["k2", "k3", "k4", "clip"])
    assert choose_columns(rows, None, ["clip"]) == (["clip"], [])


def test_values_lists_a_keys_values_most_frequent_first(
    cams: RunningServer, tmp_path: Path
) -> None:
    with Client(cams.address) as client:
        client.apply("cams", {f"extra{i}": {"camera_id": "cam1"} for i in range(5)})
        counts = client.values("cams", "camera_id")
        assert list(counts) == [("cam1", 305), ("cam0", 300), ("cam2", 300), ("cam3", 300)]
        assert not counts.more
        assert client.values("cams", "camera_id", filter="score < 1").as_dict() == {
            f"cam{i}": 25 for i in range(4)
        }
        assert len(client.values("cams", "score", limit=3)) == 3
    table = metareg(cams, "metadata", "values", "cams", "camera_id", "--limit", "2", cwd=tmp_path)
    assert (table.returncode, table.stderr) == (0, "")
    assert table.stdout.splitlines() == [
        "value  count",
        "-----  -----",
        "cam1     305",
        "cam0     300",
        "more values than the 2 shown (raise --limit, up to 1000)",
    ]
    lines = metareg(cams, "metadata", "values", "cams", "camera_id", "--prefix", "cam2",
                    "--filter", "score >= 6", "--format", "jsonl", cwd=tmp_path)  # fmt: skip
    assert (lines.returncode, lines.stderr) == (0, "")
    assert [json.loads(line) for line in lines.stdout.splitlines()] == [
        {"value": "cam2", "count": 150}
    ]
    text_key = metareg(cams, "metadata", "values", "cams", "notes", cwd=tmp_path)
    assert text_key.returncode == 1  # rejected input
    assert text_key.stderr.splitlines() == [
        'error: INVALID_ARGUMENT: key "notes" is of type text; values are listed for '
        "varchar, enum, uuid, "
        "boolean and number keys"
    ]
    bad_filter = metareg(cams, "metadata", "values", "cams", "camera_id", "--filter", "score >",
                         cwd=tmp_path)  # fmt: skip
    assert bad_filter.returncode == 2
    assert "invalid FILTER at column" in bad_filter.stderr


def test_values_piped_into_head_exits_0(cams: RunningServer, tmp_path: Path) -> None:
    shell = subprocess.run(
        f"{METAREG} metadata values cams score --limit 1000 --format jsonl | head -1; "
        "exit ${PIPESTATUS[0]}",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120,
        cwd=tmp_path, env={**os.environ, "METAREG_ADDRESS": cams.address},
    )  # fmt: skip
    assert (shell.returncode, shell.stderr) == (0, "")
    assert len(shell.stdout.splitlines()) == 1
