"""README stays true: its commands match CI and its examples run against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import RunningServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def readme_block(tag: str) -> str:
    match = re.search(rf"<!-- readme-test: {tag} -->\n```\w*\n(.*?)```", README, re.S)
    assert match, f"README has no block tagged {tag}"
    return match.group(1)


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    test_command = next(c for c in commands if "pytest" in c)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_stub_walkthrough_runs(server: RunningServer, tmp_path: Path) -> None:
    code = readme_block("stubs").replace("localhost:50051", server.address)
    script = tmp_path / "walkthrough.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "INVALID_ARGUMENT changes[0]" in result.stdout
    assert "embedding size 4097 is out of range 1..4096" in result.stdout
    assert "delete_key clip (soft)" in result.stdout
