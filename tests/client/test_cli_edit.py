"""The real `metareg` executable's single edits: metadata delete and update-where, schema
add-key, delete-key and restore-key, against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from metareg.client import Client

from ..conftest import RunningServer
from .test_cli import SCHEMA, metareg, stored


@pytest.fixture
def cams(server: RunningServer, tmp_path: Path) -> RunningServer:
    """The schema of test_cli's `cams`, imported through the client (no subprocess)."""
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    with Client(server.address) as client:
        client.import_schema_from_file("cams", tmp_path / "schema.yaml")
    return server


def _seed(server: RunningServer) -> None:
    with Client(server.address) as client:
        client.apply(
            "cams",
            {
                "u1": {"camera_id": "cam-1", "score": 0.9},
                "u2": {"camera_id": "cam-1", "score": 0.2},
                "u3": {"camera_id": "cam-2", "score": 0.5},
            },
        )


def test_delete_by_ids_and_from_a_file(cams: RunningServer, tmp_path: Path) -> None:
    _seed(cams)
    done = metareg(cams, "metadata", "delete", "cams", "u1", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "deleted 1 record(s)\n", "")
    (tmp_path / "ids.txt").write_text("u2\n\n  u3  \nu2\n")
    listed = metareg(
        cams, "metadata", "delete", "cams", "--ids-from", "ids.txt", "nope", cwd=tmp_path
    )
    assert listed.returncode == 1  # "nope" had no record, as `metadata get` exits 1
    assert listed.stdout == "deleted 2 record(s)\n"
    assert listed.stderr == "1 of the 3 id(s) had no record\n"
    assert stored(cams, "u1", "u2", "u3") == {}


def test_delete_errors(cams: RunningServer, tmp_path: Path) -> None:
    no_ids = metareg(cams, "metadata", "delete", "cams", cwd=tmp_path)
    assert no_ids.returncode == 2
    assert "give the data unit IDs to delete, or --ids-from FILE" in no_ids.stderr
    unknown = metareg(cams, "metadata", "delete", "nope", "u1", cwd=tmp_path)
    assert (unknown.returncode, unknown.stderr) == (
        1, 'error: NOT_FOUND: schema "nope" does not exist\n')  # fmt: skip


def test_update_where_patches_the_matches(cams: RunningServer, tmp_path: Path) -> None:
    _seed(cams)
    done = metareg(cams, "metadata", "update-where", "cams", "--filter", 'camera_id = "cam-1"',
                   "--set", '{"night": true}', cwd=tmp_path)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "matched 2, updated 2\n"), done.stderr
    assert stored(cams, "u1", "u2", "u3") == {
        "u1": {"camera_id": "cam-1", "score": 0.9, "night": True},
        "u2": {"camera_id": "cam-1", "score": 0.2, "night": True},
        "u3": {"camera_id": "cam-2", "score": 0.5},
    }
    replaced = metareg(cams, "metadata", "update-where", "cams", "--filter", "score < 0.3",
                       "--set", '{"score": 0}', "--mode", "replace", cwd=tmp_path)  # fmt: skip
    assert replaced.stdout == "matched 1, updated 1\n", replaced.stderr
    assert stored(cams, "u2") == {"u2": {"score": 0.0}}
    every = metareg(cams, "metadata", "update-where", "cams", "--all", "--set",
                    '{"night": false}', cwd=tmp_path)  # fmt: skip
    assert every.stdout == "matched 3, updated 3\n", every.stderr
    with Client(cams.address) as client:
        assert client.count("cams", "night = false") == 3


def test_update_where_dry_run_writes_nothing(cams: RunningServer, tmp_path: Path) -> None:
    _seed(cams)
    dry = metareg(cams, "metadata", "update-where", "cams", "--filter", "score >= 0.5",
                  "--set", '{"score": null}', "--dry-run", cwd=tmp_path)  # fmt: skip
    assert (dry.returncode, dry.stdout) == (0, "dry run: 2 record(s) match; nothing written\n")
    with Client(cams.address) as client:
        assert client.count("cams", "score EXISTS") == 3
        assert client.get_metadata("cams", ["u1"]) == {"u1": {"camera_id": "cam-1", "score": 0.9}}
    # The dry run checks the patch too: one the matches would reject fails as the run would.
    invalid = metareg(cams, "metadata", "update-where", "cams", "--filter", "score >= 0.5",
                      "--set", '{"camera_id": "much-too-long-for-16"}', "--dry-run",
                      cwd=tmp_path)  # fmt: skip
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("error: INVALID_ARGUMENT")
    assert stored(cams, "u1")["u1"]["camera_id"] == "cam-1"


def test_update_where_usage_errors_exit_2(cams: RunningServer, tmp_path: Path) -> None:
    _seed(cams)

    def run(*args: str) -> tuple[int, str]:
        done = metareg(cams, "metadata", "update-where", "cams", *args, cwd=tmp_path)
        return done.returncode, done.stderr

    code, err = run("--filter", 'score > "high"', "--set", '{"night": true}')
    assert code == 2
    assert err.splitlines() == [
        'error: invalid FILTER at column 9: key "score" has type number; compare it with a '
        "number, not a string",
        '  score > "high"',
        "          ^",
    ]
    code, err = run("--filter", "score >", "--set", "{}", "--dry-run")
    assert code == 2
    assert err.startswith("error: invalid FILTER at column 8")
    code, err = run("--set", '{"night": true}')
    assert code == 2
    assert "give either --filter FILTER or --all" in err
    code, err = run("--filter", "score > 1", "--all", "--set", '{"night": true}')
    assert code == 2
    assert "give either --filter FILTER or --all" in err
    code, err = run("--filter", " ", "--set", '{"night": true}')
    assert code == 2
    assert "--filter is empty; to patch every record say --all" in err
    code, err = run("--filter", "score > 1", "--set", "[1]")
    assert code == 2
    assert "must be a JSON object" in err
    code, err = run("--filter", "score > 1", "--set", "{nope")
    assert code == 2
    assert "not JSON" in err
    assert stored(cams, "u1") == {"u1": {"camera_id": "cam-1", "score": 0.9}}


def test_update_where_rejected_patch_and_unknown_schema_exit_1(
    cams: RunningServer, tmp_path: Path
) -> None:
    _seed(cams)
    bad = metareg(cams, "metadata", "update-where", "cams", "--filter", "score > 0",
                  "--set", '{"score": "high"}', cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: INVALID_ARGUMENT")
    assert stored(cams, "u1")["u1"]["score"] == 0.9
    for args in (["--filter", "x EXISTS"], ["--all"]):
        missing = metareg(cams, "metadata", "update-where", "nope", *args, "--set", "{}",
                          cwd=tmp_path)  # fmt: skip
        assert (missing.returncode, missing.stderr) == (
            1, 'error: NOT_FOUND: schema "nope" does not exist\n')  # fmt: skip


def test_add_key_of_each_kind(cams: RunningServer, tmp_path: Path) -> None:
    def add(*args: str) -> str:
        done = metareg(cams, "schema", "add-key", "cams", *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert add("weather", "enum", "--values", "sun, rain,snow") == (
        "cams: version 2 (add_enum(key='weather', values=['sun', 'rain', 'snow']))\n"
    )
    assert add("tag", "STRING", "--max-length", "8").startswith("cams: version 3 (")
    assert add("vec", "embedding", "--size", "4").startswith("cams: version 4 (")
    assert add("taken_at", "datetime", "--expected-version", "4").startswith("cams: version 5 (")
    with Client(cams.address) as client:
        schema = client.schema("cams")
        assert schema.version == 5
        assert schema.get_enum_options("weather") == ["sun", "rain", "snow"]
        assert schema.get_max_length("tag") == 8
        assert schema.get_embedding_size("vec") == 4
        assert schema.get_key_type("taken_at") == "datetime"
    created = metareg(cams, "schema", "add-key", "fresh", "n", "number",
                      "--expected-version", "0", cwd=tmp_path)  # fmt: skip
    assert created.stdout.startswith("fresh: version 1 ("), created.stderr


def test_add_key_errors(cams: RunningServer, tmp_path: Path) -> None:
    def add(*args: str) -> tuple[int, str]:
        done = metareg(cams, "schema", "add-key", "cams", *args, cwd=tmp_path)
        return done.returncode, done.stderr

    code, err = add("k", "float")
    assert code == 2
    assert "Invalid value for 'TYPE'" in err
    code, err = add("k", "enum")
    assert code == 2
    assert "an enum key needs --values a,b,c" in err
    code, err = add("k", "embedding")
    assert code == 2
    assert "an embedding key needs --size N" in err
    code, err = add("k", "number", "--max-length", "3")
    assert code == 2
    assert "--max-length does not apply to a number key" in err
    code, err = add("score", "number")
    assert code == 1
    assert err.startswith("error: INVALID_ARGUMENT: ")
    assert '  changes[0]: key "score" already exists (number)' in err
    code, err = add("k", "number", "--expected-version", "7")
    assert (code, err) == (1, 'error: schema "cams" is at version 1, not 7 '
                              "(--expected-version); nothing changed\n")  # fmt: skip
    with Client(cams.address) as client:
        assert client.schema("cams").version == 1


def test_add_key_that_invalidates_stored_values_needs_force(
    server: RunningServer, tmp_path: Path
) -> None:
    (tmp_path / "open.yaml").write_text("camera_id: varchar\n")
    done = metareg(server, "schema", "import", "open", "open.yaml", "--allow-unknown-keys",
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Client(server.address) as client:
        client.apply("open", {"u1": {"camera_id": "a", "level": "high"}})
    refused = metareg(server, "schema", "add-key", "open", "level", "number", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: FAILED_PRECONDITION: ")
    assert "re-run with --force" in refused.stderr
    forced = metareg(server, "schema", "add-key", "open", "level", "number", "--force",
                     cwd=tmp_path)  # fmt: skip
    assert forced.stdout.startswith("open: version 2 ("), forced.stderr
    with Client(server.address) as client:
        assert client.get_metadata("open", ["u1"]) == {"u1": {"camera_id": "a"}}


def test_delete_and_restore_a_key(cams: RunningServer, tmp_path: Path) -> None:
    _seed(cams)

    def schema(*args: str) -> tuple[int, str, str]:
        done = metareg(cams, "schema", *args, cwd=tmp_path)
        return done.returncode, done.stdout, done.stderr

    assert schema("delete-key", "cams", "score")[:2] == (
        0, "cams: version 2 (delete_key(key='score'))\n")  # fmt: skip
    assert stored(cams, "u1") == {"u1": {"camera_id": "cam-1"}}
    assert schema("delete-key", "cams", "score")[:2] == (
        0, "cams: nothing to change (delete_key(key='score')); still version 2\n")  # fmt: skip
    assert schema("restore-key", "cams", "score")[:2] == (
        0, "cams: version 3 (restore_key(key='score'))\n")  # fmt: skip
    assert stored(cams, "u1") == {"u1": {"camera_id": "cam-1", "score": 0.9}}

    code, _, err = schema("delete-key", "cams", "score", "--hard")
    assert code == 2
    assert "--hard purges the values of the key" in err
    code, out, _ = schema("delete-key", "cams", "score", "--hard", "--force")
    assert (code, out) == (0, "cams: version 4 (delete_key(key='score', hard=True))\n")
    code, _, err = schema("restore-key", "cams", "score")
    assert code == 1
    assert "was hard-deleted; its values are gone" in err
    assert stored(cams, "u1") == {"u1": {"camera_id": "cam-1"}}


def test_delete_and_restore_key_errors(cams: RunningServer, tmp_path: Path) -> None:
    for command in ("delete-key", "restore-key"):
        missing = metareg(cams, "schema", command, "nope", "k", cwd=tmp_path)
        assert (missing.returncode, missing.stderr) == (
            1, 'error: NOT_FOUND: schema "nope" does not exist\n')  # fmt: skip
        unknown = metareg(cams, "schema", command, "cams", "k", cwd=tmp_path)
        assert unknown.returncode == 1
        assert unknown.stderr.startswith("error: INVALID_ARGUMENT")
        assert '  changes[0]: schema has no key "k"' in unknown.stderr
    stale = metareg(cams, "schema", "delete-key", "cams", "score", "--expected-version", "0",
                    cwd=tmp_path)  # fmt: skip
    assert stale.returncode == 1
    assert "is at version 1, not 0" in stale.stderr
