"""README stays true: its commands match CI and its examples run against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def readme_block(tag: str) -> str:
    match = re.search(rf"<!-- readme-test: {tag} -->\n```\w*\n(.*?)```", README, re.S)
    assert match, f"README has no block tagged {tag}"
    return match.group(1)


def run_block(tag: str, server: RunningServer, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run README's block `tag` as a script against `server`; it must succeed."""
    script = tmp_path / f"readme_{tag}.py"  # not json.py: it would shadow the module
    script.write_text(readme_block(tag).replace("localhost:50051", server.address))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    test_command = next(c for c in commands if "pytest" in c)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_stub_walkthrough_runs(server: RunningServer, tmp_path: Path) -> None:
    result = run_block("stubs", server, tmp_path)
    assert "INVALID_ARGUMENT changes[0]" in result.stdout
    assert "embedding size 4097 is out of range 1..4096" in result.stdout
    assert "delete_key clip (soft)" in result.stdout


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_json_form_example_runs(server: RunningServer, tmp_path: Path) -> None:
    server.registry.UpdateSchema(rpb.UpdateSchemaRequest(
        name="cams", expected_version=0, changes=[
            b.add_scalar("camera_id", "varchar"), b.add_embedding("clip", 512),
        ]))  # fmt: skip
    assert run_block("json", server, tmp_path).stdout.strip() == "2 [1, 1]"
    stored = b.stored(server.metadata, "cams", "frame-1", "frame-2")
    assert stored == {"frame-1": {"camera_id": "cam001", "clip": [0.25] * 512}, "frame-2": {}}
