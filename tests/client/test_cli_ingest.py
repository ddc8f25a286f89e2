"""`metareg metadata apply` and `validate` of whole sources through the real executable:
all-or-nothing without --partial, exact counts, rejects per command that keep the
original line and apply once fixed, oversized records, progress off a terminal, sidecar
folders and Parquet, and a re-run after the server was killed mid-apply."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from metareg.client import Client

from ..conftest import RunningServer
from ..pgcluster import free_port
from ..test_workers import METAREG, ServerLog
from .test_cli import SCHEMA, jsonl, metareg, record, stored


@pytest.fixture
def cams(server: RunningServer, tmp_path: Path) -> RunningServer:
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    done = metareg(server, "schema", "import", "cams", "schema.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return server


def dirty_file(path: Path, count: int, bad_every: int) -> tuple[Path, set[int]]:
    """`count` records, every `bad_every`-th one invalid (a text score); its bad lines."""
    bad = set(range(bad_every - 1, count, bad_every))
    lines = [
        record(f"u{i}", camera_id=f"cam{i % 7}", score="bad" if i in bad else i / 2)
        for i in range(count)
    ]
    return jsonl(path, *lines), {i + 1 for i in bad}


def rejects_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.open()]


def test_an_atomic_apply_of_a_dirty_file_writes_nothing_and_lists_every_reject(
    cams: RunningServer, tmp_path: Path
) -> None:
    _, bad_lines = dirty_file(tmp_path / "dash.jsonl", 3000, 33)  # 3% invalid, in 3 requests
    checked = metareg(cams, "metadata", "validate", "cams", "dash.jsonl", cwd=tmp_path)
    assert checked.stdout.startswith(f"valid {3000 - len(bad_lines)}, invalid {len(bad_lines)}")
    done = metareg(cams, "metadata", "apply", "cams", "dash.jsonl", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith(
        f"applied 0, unchanged 0, rejected {len(bad_lines)}, "
        f"not applied {3000 - len(bad_lines)}, not sent 0, unknown 0"
    ), done.stdout
    assert "stay applied" not in done.stderr
    found = rejects_of(tmp_path / "dash.apply.rejects.jsonl")
    assert {r["line"] for r in found} == bad_lines
    assert all(r["violations"] and r["source"] for r in found)
    # validate's own file is still there, not overwritten by apply's
    assert {r["line"] for r in rejects_of(tmp_path / "dash.validate.rejects.jsonl")} == bad_lines
    assert stored(cams, *(f"u{i}" for i in range(3000))) == {}

    partial = metareg(cams, "metadata", "apply", "cams", "dash.jsonl", "--partial", cwd=tmp_path)
    assert partial.returncode == 1
    assert partial.stdout.startswith(
        f"applied {3000 - len(bad_lines)}, unchanged 0, rejected {len(bad_lines)}, "
        "not applied 0, not sent 0, unknown 0"
    ), partial.stdout
    assert len(stored(cams, *(f"u{i}" for i in range(3000)))) == 3000 - len(bad_lines)


def test_a_fixed_rejects_file_applies_as_input_and_keeps_unparseable_text(
    cams: RunningServer, tmp_path: Path
) -> None:
    jsonl(
        tmp_path / "data.jsonl",
        record("u1", score=1),
        '{"data_unit_id": "u2", "metadata": {"score": 2,}}',
        record("u3", score="three"),
    )
    done = metareg(cams, "metadata", "apply", "cams", "data.jsonl", "--partial", cwd=tmp_path)
    assert done.returncode == 1
    found = rejects_of(tmp_path / "data.apply.rejects.jsonl")
    assert [(r["line"], r["source"]) for r in found] == [
        (2, '{"data_unit_id": "u2", "metadata": {"score": 2,}}'),
        (3, json.dumps(record("u3", score="three"))),
    ]
    assert "line 2: not valid JSON" in done.stdout  # said once, not "line 2: line 2: …"
    assert "line 2: line 2" not in done.stdout
    fixed = [json.loads(found[0]["source"].replace(",}", "}")), {**found[1]}]  # type: ignore[union-attr]
    fixed[1]["metadata"] = {"score": 3}
    jsonl(tmp_path / "fixed.jsonl", *fixed)
    again = metareg(cams, "metadata", "apply", "cams", "fixed.jsonl", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert stored(cams, "u1", "u2", "u3") == {
        "u1": {"score": 1.0},
        "u2": {"score": 2.0},
        "u3": {"score": 3.0},
    }
    assert not (tmp_path / "fixed.apply.rejects.jsonl").exists()


def test_a_record_too_large_for_a_request_is_a_reject_not_an_abort(
    cams: RunningServer, tmp_path: Path
) -> None:
    huge = "x" * (33 * 1024 * 1024)
    jsonl(tmp_path / "big.jsonl", record("u1", score=1), record("u2", camera_id=huge))
    for partial, code, applied in ((False, 1, {}), (True, 1, {"u1": {"score": 1.0}})):
        args = ["--partial"] if partial else []
        done = metareg(cams, "metadata", "apply", "cams", "big.jsonl", *args, cwd=tmp_path)
        assert (done.returncode, "Traceback" in done.stderr) == (code, False), done.stderr
        assert "rejected 1" in done.stdout
        [reject] = rejects_of(tmp_path / "big.apply.rejects.jsonl")
        assert reject["line"] == 2
        assert reject["violations"][0]["rule"] == "size"  # type: ignore[index]
        assert "more than one request can carry" in done.stdout
        assert stored(cams, "u1", "u2") == applied


def test_progress_lines_off_a_terminal_and_quiet(cams: RunningServer, tmp_path: Path) -> None:
    dirty_file(tmp_path / "dash.jsonl", 2500, 500)
    done = metareg(
        cams, "metadata", "validate", "cams", "dash.jsonl", "--progress-every", "0", cwd=tmp_path
    )
    progress = [line for line in done.stderr.splitlines() if line.startswith("checking: ")]
    assert progress, done.stderr
    assert "2,500/2,500 (100%" in progress[-1]
    assert "5 rejected" in progress[-1]
    quiet = metareg(
        cams, "metadata", "validate", "cams", "dash.jsonl", "-q", "--progress-every", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert quiet.stderr == ""


def test_empty_inputs_exit_alike(cams: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("data_unit_id,score\n")
    (tmp_path / "empty.jsonl").write_text("")
    for name in ("empty.csv", "header.csv", "empty.jsonl"):
        done = metareg(cams, "metadata", "apply", "cams", name, cwd=tmp_path)
        assert done.returncode == 0, (name, done.stderr)
        assert "the input holds no records" in done.stderr


def test_a_sidecar_folder_names_units_by_path_and_flattens(
    cams: RunningServer, tmp_path: Path
) -> None:
    with Client(cams.address) as client:
        schema = client.schema("cams")
        schema.add_scalar("capture.exposure", "number")
        schema.add_scalar("capture.lens", "varchar")
        schema.save()
    folder = tmp_path / "sidecars"
    (folder / "images" / "day").mkdir(parents=True)
    (folder / "images" / "photo_001.json").write_text(
        json.dumps({"camera_id": "cam1", "capture": {"exposure": 0.5, "lens": "wide"}})
    )
    (folder / "images" / "day" / "photo_002.json").write_text('{"score": 2}')
    (folder / "images" / "broken.json").write_text("{nope")
    (folder / "images" / "notes.txt").write_text("not a sidecar")
    done = metareg(
        cams, "metadata", "apply", "cams", "--sidecars", "sidecars", "--partial", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("applied 2, unchanged 0, rejected 1"), done.stdout
    [reject] = rejects_of(tmp_path / "sidecars.apply.rejects.jsonl")
    assert (reject["file"], reject["data_unit_id"], reject["source"]) == (
        "images/broken.json", "images/broken", "{nope")  # fmt: skip
    assert stored(cams, "images/photo_001", "images/day/photo_002") == {
        "images/photo_001": {"camera_id": "cam1", "capture.exposure": 0.5, "capture.lens": "wide"},
        "images/day/photo_002": {"score": 2.0},
    }


def test_a_parquet_file_applies_by_row_group(cams: RunningServer, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "data_unit_id": [f"u{i}" for i in range(2500)],
            "camera_id": [f"cam{i}" if i % 3 else None for i in range(2500)],
            "score": [float(i) for i in range(2500)],
            "clip": [[1.0, 2.0, float(i)] for i in range(2500)],
        }
    )
    pq.write_table(table, tmp_path / "data.parquet", row_group_size=1000)
    done = metareg(cams, "metadata", "apply", "cams", "data.parquet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("applied 2500, unchanged 0, rejected 0")
    found = stored(cams, "u0", "u1", "u2498")
    assert found["u0"] == {"score": 0.0, "clip": [1.0, 2.0, 0.0]}  # a null cell is absent
    assert found["u2498"] == {"camera_id": "cam2498", "score": 2498.0, "clip": [1.0, 2.0, 2498.0]}


@pytest.fixture
def killable_server(cams: RunningServer, tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """`metareg serve` processes on the fixture's database (the in-process one is left
    idle); the test starts and kills them, this stops what is left."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def serve(database_url: str, port: int, cwd: Path) -> tuple[subprocess.Popen[str], ServerLog]:
    process = subprocess.Popen(
        [METAREG, "serve", "--port", str(port), "--database-url", database_url],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log = ServerLog(process)
    log.wait_for(lambda text: "metareg listening on" in text)
    return process, log


def test_a_kill_9_mid_apply_then_the_same_command_applies_everything_once(
    cams: RunningServer, killable_server: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    count = 40_000
    jsonl(
        tmp_path / "dash.jsonl",
        *(record(f"u{i}", camera_id=f"cam{i % 9}", score=i) for i in range(count)),
    )
    port = free_port()
    address = f"127.0.0.1:{port}"
    first, _ = serve(cams.database_url, port, tmp_path)
    killable_server.append(first)
    command = [str(METAREG), "metadata", "apply", "cams", "dash.jsonl", "--partial",
               "--address", address, "--timeout", "10", "-q"]  # fmt: skip
    running = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with Client(address) as client:
        while client.count("cams") < 5000 and running.poll() is None:
            pass
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    out, err = running.communicate(timeout=120)
    assert running.returncode == 3, (out, err)
    assert "Run the same command again" in err
    assert "Fix the input" not in err
    second, _ = serve(cams.database_url, port, tmp_path)
    killable_server.append(second)
    with Client(address) as client:
        before = client.count("cams")
    assert 5000 <= before < count
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"applied {count}, unchanged 0, rejected 0"), again.stdout
    assert "applied by an earlier run of this command" in again.stdout
    with Client(address) as client:
        assert client.count("cams") == count
        revisions = {r.revision for r in client.query("cams", page_size=1000)}
    assert revisions == {1}  # each record written exactly once
