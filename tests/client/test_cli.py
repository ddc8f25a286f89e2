"""The real `metareg` executable against a real server: output, rejects and exit codes."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metareg.client import Client

from ..conftest import RunningServer

METAREG = Path(sys.executable).with_name("metareg")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCHEMA = """\
camera_id: {type: varchar, max_length: 16}
score: number
night: boolean
clip: {type: embedding, size: 3}
"""


def metareg(
    server: RunningServer | None, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "METAREG_ADDRESS"}
    if server is not None:
        env["METAREG_ADDRESS"] = server.address
    return subprocess.run(
        [str(METAREG), *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


def jsonl(path: Path, *records: object) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def record(data_unit_id: str, **metadata: object) -> dict[str, object]:
    return {"data_unit_id": data_unit_id, "metadata": metadata}


@pytest.fixture
def cams(server: RunningServer, tmp_path: Path) -> RunningServer:
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    done = metareg(server, "schema", "import", "cams", "schema.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return server


def stored(server: RunningServer, *ids: str) -> dict[str, dict[str, object]]:
    with Client(server.address) as client:
        return client.get_metadata("cams", ids)


def test_schema_import_dry_run_import_show_export(server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    dry = metareg(server, "schema", "import", "cams", "schema.yaml", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("dry run: importing schema.yaml would create version 1 of cams")
    assert "  add_embedding clip 3" in dry.stdout
    assert "no stored record is affected" in dry.stdout
    with Client(server.address) as client:
        assert client.schema("cams").version == 0  # a dry run writes nothing

    done = metareg(server, "schema", "import", "cams", "schema.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cams: imported schema.yaml as version 1" in done.stdout
    show = metareg(server, "schema", "show", "cams", cwd=tmp_path)
    assert show.stdout.splitlines() == [
        'schema "cams" version 1',
        "  camera_id  varchar(16)",
        "  clip       embedding(3)",
        "  night      boolean",
        "  score      number",
    ]
    shown = json.loads(metareg(server, "schema", "show", "cams", "--json", cwd=tmp_path).stdout)
    assert shown["keys"]["clip"] == {"type": "embedding", "size": 3, "state": "active"}
    export = metareg(server, "schema", "export", "cams", cwd=tmp_path)
    (tmp_path / "exported.json").write_text(export.stdout)
    again = metareg(server, "schema", "import", "cams", "exported.json", cwd=tmp_path)
    assert again.returncode == 0
    assert "cams already matches exported.json (version 1); nothing to do" in again.stdout
    json_schema = metareg(
        server, "schema", "export", "cams", "--format", "json-schema", cwd=tmp_path
    )
    assert json.loads(json_schema.stdout)["title"] == "cams v1"
    listing = metareg(server, "schema", "list", cwd=tmp_path)
    assert listing.stdout.startswith("cams\tv1\t4 keys\t")
    history = metareg(server, "schema", "history", "cams", cwd=tmp_path)
    assert history.stdout.startswith("v1  ")
    assert "    add_scalar night boolean" in history.stdout


def test_dry_run_shows_the_impact_on_stored_records(cams: RunningServer, tmp_path: Path) -> None:
    with Client(cams.address) as client:
        client.apply("cams", {"u1": {"camera_id": "a-very-long-id"}, "u2": {"camera_id": "b"}})
    (tmp_path / "narrow.yaml").write_text(SCHEMA.replace("max_length: 16", "max_length: 4"))
    dry = metareg(cams, "schema", "import", "cams", "narrow.yaml", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 1
    assert "1 stored record(s) would become invalid (e.g. u1)" in dry.stdout
    assert "without --force the import would be refused" in dry.stdout
    refused = metareg(cams, "schema", "import", "cams", "narrow.yaml", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: FAILED_PRECONDITION: ")
    assert "re-run with --force" in refused.stderr
    forced = metareg(cams, "schema", "import", "cams", "narrow.yaml", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert stored(cams, "u1", "u2") == {"u1": {}, "u2": {"camera_id": "b"}}


def test_jsonl_apply_writes_rejects_and_applies_the_rest(
    cams: RunningServer, tmp_path: Path
) -> None:
    jsonl(
        tmp_path / "data.jsonl",
        record("u1", camera_id="cam1", score=0.5, clip=[1, 2, 3]),
        record("u2", score="high", night="no"),
        "{not json",
        "",
        record("u3", night=True, keyframes=[0, 4]),
    )
    done = metareg(cams, "metadata", "apply", "cams", "data.jsonl", "--partial", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith("applied 2, unchanged 0, rejected 2, not applied 0")
    assert "rejects: 2 record(s) with their violations in data.apply.rejects.jsonl" in done.stdout
    rejects = [json.loads(line) for line in (tmp_path / "data.apply.rejects.jsonl").open()]
    assert [(r["line"], r["data_unit_id"], r["outcome"]) for r in rejects] == [
        (3, "", "rejected"),
        (2, "u2", "rejected"),
    ]
    assert "not valid JSON" in rejects[0]["violations"][0]["description"]
    assert {v["key"] for v in rejects[1]["violations"]} == {"score", "night"}
    assert rejects[1]["metadata"] == {"score": "high", "night": "no"}
    assert stored(cams, "u1", "u2", "u3") == {
        "u1": {"camera_id": "cam1", "score": 0.5, "clip": [1.0, 2.0, 3.0]},
        "u3": {"night": True, "keyframes": [0, 4]},
    }


def test_csv_apply_coerces_by_schema_type(cams: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text(
        'data_unit_id,camera_id,score,night,clip\nu1,cam1,95,true,"[0.5, 1, 2]"\nu2,cam2,,false,\n'
    )
    done = metareg(cams, "metadata", "apply", "cams", "data.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("applied 2, unchanged 0, rejected 0")
    assert "rejects: none" in done.stdout
    assert not (tmp_path / "data.apply.rejects.jsonl").exists()
    assert stored(cams, "u1", "u2") == {
        "u1": {"camera_id": "cam1", "score": 95.0, "night": True, "clip": [0.5, 1.0, 2.0]},
        "u2": {"camera_id": "cam2", "night": False},
    }


def test_an_atomic_csv_apply_writes_nothing_and_lists_every_reject(
    cams: RunningServer, tmp_path: Path
) -> None:
    rows = [f"u{i},cam{i},{i},true,\n" for i in range(1500)]
    rows[300] = "u300,cam300,much,true,\n"
    rows[1200] = "u1200,cam1200,lots,maybe,\n"
    (tmp_path / "data.csv").write_text("data_unit_id,camera_id,score,night,clip\n" + "".join(rows))
    rejects = tmp_path / "out" / "bad.jsonl"
    rejects.parent.mkdir()
    done = metareg(
        cams, "metadata", "apply", "cams", "data.csv", "--rejects", str(rejects), cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stdout.startswith(
        "applied 0, unchanged 0, rejected 2, not applied 1498, not sent 0, unknown 0"
    )
    assert done.stderr.startswith("error: 2 of 1500 records are invalid, so nothing was applied"), (
        done.stderr
    )
    found = [json.loads(line) for line in rejects.open()]
    assert [(r["line"], r["data_unit_id"]) for r in found] == [(302, "u300"), (1202, "u1200")]
    assert found[1]["source"] == "u1200,cam1200,lots,maybe,"
    assert {v["rule"] for v in found[1]["violations"]} == {"type"}
    assert stored(cams, *(f"u{i}" for i in range(1500))) == {}


def test_validate_writes_nothing_and_reports(cams: RunningServer, tmp_path: Path) -> None:
    jsonl(tmp_path / "ok.jsonl", record("u1", score=1), record("u2", night=False))
    ok = metareg(cams, "metadata", "validate", "cams", "ok.jsonl", cwd=tmp_path)
    assert (ok.returncode, ok.stdout.splitlines()[0][:17]) == (0, "valid 2, invalid ")
    jsonl(tmp_path / "bad.jsonl", record("u1", score=1), record("u2", score="x"))
    bad = metareg(
        cams, "metadata", "validate", "cams", "bad.jsonl", "--coerce-strings", cwd=tmp_path
    )
    assert bad.returncode == 1
    assert bad.stdout.startswith("valid 1, invalid 1")
    [reject] = [json.loads(line) for line in (tmp_path / "bad.validate.rejects.jsonl").open()]
    assert (reject["line"], reject["outcome"], reject["violations"][0]["key"]) == (
        2, "invalid", "score")  # fmt: skip
    with gzip.open(tmp_path / "bad.jsonl.gz", "wt") as packed:
        packed.write((tmp_path / "bad.jsonl").read_text())
    gz = metareg(cams, "metadata", "validate", "cams", "bad.jsonl.gz", "-q", cwd=tmp_path)
    assert (gz.returncode, gz.stdout.splitlines()[0][:18]) == (1, "valid 1, invalid 1")
    assert stored(cams, "u1", "u2") == {}


def test_get_prints_jsonl_and_exit_1_for_missing_ids(cams: RunningServer, tmp_path: Path) -> None:
    with Client(cams.address) as client:
        client.apply("cams", {"u1": {"score": 2}})
    found = metareg(cams, "metadata", "get", "cams", "u1", cwd=tmp_path)
    assert found.returncode == 0
    assert json.loads(found.stdout) == {"data_unit_id": "u1", "metadata": {"score": 2.0}}
    missing = metareg(cams, "metadata", "get", "cams", "u1", "nope", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr == "no record for: nope\n"


def test_usage_errors_exit_2(cams: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("")
    for args in [
        ("metadata", "apply", "cams"),
        ("metadata", "apply", "cams", "missing.jsonl"),
        ("metadata", "apply", "cams", "data.txt"),
        ("metadata", "apply", "cams", "data.txt", "--mode", "upsert"),
        ("schema", "frob"),
    ]:
        done = metareg(cams, *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stdout == ""
        assert "Error" in done.stderr


def test_rejected_input_exits_1(cams: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("a: strnig\n")
    done = metareg(cams, "schema", "import", "cams", "bad.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: INVALID_ARGUMENT: bad.yaml: ")
    assert '  document["a"]: unknown type "strnig"' in done.stderr
    missing = metareg(cams, "schema", "show", "nope", cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (
        1, 'error: NOT_FOUND: schema "nope" does not exist\n')  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("latin1.jsonl", b'{"data_unit_id": "u1", "metadata": {"camera_id": "caf\xe9"}}\n',
         "error: latin1.jsonl: not UTF-8 text"),
        ("plain.jsonl.gz", b'{"data_unit_id": "u1", "metadata": {}}\n',
         "error: plain.jsonl.gz: not a readable gzip file"),
        ("cut.jsonl.gz", gzip.compress(b'{"data_unit_id": "u1"}\n' * 100)[:40],
         "error: cut.jsonl.gz: not a readable gzip file"),
    ],
)  # fmt: skip
def test_an_unreadable_data_file_is_an_error_not_a_traceback(
    cams: RunningServer, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    for command in ("apply", "validate"):
        done = metareg(cams, "metadata", command, "cams", name, cwd=tmp_path)
        assert (done.returncode, "Traceback" in done.stderr) == (1, False), done.stderr
        assert done.stderr.startswith(message), done.stderr


def test_odd_but_readable_lines_are_rejects(cams: RunningServer, tmp_path: Path) -> None:
    """A 200,000-character CSV cell reaches the server; deep JSON and lone surrogates are
    rejected line by line, and the rest applies."""
    (tmp_path / "big.csv").write_text(f"data_unit_id,camera_id\nu1,{'x' * 200_000}\nu2,ok\n")
    done = metareg(cams, "metadata", "apply", "cams", "big.csv", "--partial", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    rejects = [json.loads(line) for line in (tmp_path / "big.apply.rejects.jsonl").open()]
    assert [(r["line"], r["violations"][0]["rule"]) for r in rejects] == [(2, "max_length")]
    jsonl(
        tmp_path / "odd.jsonl",
        '{"data_unit_id": "u3", "metadata": {"camera_id": ' + "[" * 50_000 + "]" * 50_000 + "}}",
        '{"data_unit_id": "u\\ud800", "metadata": {"camera_id": "a"}}',
        '{"data_unit_id": "u4", "metadata": {"camera_id": "\\udc00"}}',
        record("u5", camera_id="fine"),
    )
    done = metareg(cams, "metadata", "apply", "cams", "odd.jsonl", "--partial", cwd=tmp_path)
    assert (done.returncode, "Traceback" in done.stderr) == (1, False), done.stderr
    rejects = [json.loads(line) for line in (tmp_path / "odd.apply.rejects.jsonl").open()]
    assert [r["line"] for r in rejects] == [1, 2, 3]
    assert "nested too deeply" in rejects[0]["violations"][0]["description"]
    assert rejects[1]["data_unit_id"] == "u\ud800"  # kept, escaped in the rejects file
    assert "lone surrogate" in rejects[2]["violations"][0]["description"]
    assert stored(cams, "u2", "u5") == {"u2": {"camera_id": "ok"}, "u5": {"camera_id": "fine"}}


def test_an_unreachable_server_exits_3(tmp_path: Path) -> None:
    jsonl(tmp_path / "data.jsonl", record("u1", score=1))
    for args in [
        ("schema", "show", "cams"),
        ("metadata", "apply", "cams", "data.jsonl"),
    ]:
        done = metareg(None, *args, "--address", "127.0.0.1:1", "--timeout", "2", cwd=tmp_path)
        assert done.returncode == 3, done.stderr
        assert done.stderr.startswith("error: cannot reach a metareg server at 127.0.0.1:1")


def test_the_examples_work(server: RunningServer, tmp_path: Path) -> None:
    """The CLI quickstart in README.md, with the files in examples/."""
    cwd = EXAMPLES.parent
    imported = metareg(server, "schema", "import", "dashcams", "examples/schema.yaml", cwd=cwd)
    assert imported.returncode == 0, imported.stderr
    applied = metareg(server, "metadata", "apply", "dashcams", "examples/metadata.jsonl", cwd=cwd)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.startswith("applied 3, ")
    rejects = tmp_path / "rejects.jsonl"
    partial = metareg(
        server, "metadata", "apply", "dashcams", "examples/metadata.csv", "--partial",
        "--rejects", str(rejects), cwd=cwd,
    )  # fmt: skip
    assert partial.returncode == 1
    assert partial.stdout.startswith("applied 3, unchanged 0, rejected 1")
    assert json.loads(rejects.read_text())["data_unit_id"] == "frame-0006"
    best = metareg(
        server, "metadata", "query", "dashcams", "quality_score >= 0.7 AND NOT night = true",
        "--order-by", "quality_score desc", cwd=cwd,
    )  # fmt: skip
    assert [json.loads(line)["data_unit_id"] for line in best.stdout.splitlines()] == [
        "frame-0001", "frame-0003", "frame-0005", "frame-0004"]  # fmt: skip
    wet = metareg(server, "metadata", "query", "dashcams", 'weather IN ("rain", "snow")',
                  "--format", "table", cwd=cwd)  # fmt: skip
    lines = wet.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:4]] == ["frame-0002", "frame-0007"]
    assert lines[4] == "2 record(s)"
    north = metareg(server, "metadata", "count", "dashcams", 'camera_id ~ "north"', cwd=cwd)
    assert north.stdout == "2\n"
