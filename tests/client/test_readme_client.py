"""The README's Python client quickstart runs against a real server, twice."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import RunningServer

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_block(tag: str) -> str:
    match = re.search(rf"<!-- readme-test: {tag} -->\n```\w*\n(.*?)```", README, re.S)
    assert match, f"README has no block tagged {tag}"
    return match.group(1)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_client_quickstart_runs(server: RunningServer, tmp_path: Path) -> None:
    code = readme_block("client")
    assert 'Client("localhost:50051")' in code
    script = tmp_path / "quickstart.py"
    script.write_text(code.replace("localhost:50051", server.address))
    outputs = []
    for _ in range(2):  # the quickstart may be run again on the same server
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    first = outputs[0].splitlines()
    assert first[0] == 'schema "dashcams-py" version 2'
    assert "  weather        enum(sunny, rain, snow)" in first
    assert "{'type': 'embedding', 'size': 512}" in first
    assert "valid: False" in first
    assert "  frame-2 quality_score type" in first
    assert "  frame-2 weather enum_option" in first
    assert "3 requests, 2500 results" in first
    assert "cam-north 0.0028 512" in first
    assert "  camera_id      varchar(64)  [indexed]" in first
    assert first[first.index("cam-north 0.0028 512") + 1 :][:4] == [
        "frame-2499 0.9996", "frame-2498 0.9992", "1250 below 0.5", "3 would be updated",
    ]  # fmt: skip
    assert "  frame-1 not_applied []" in first
    assert "  frame-2 rejected ['type']" in first
    assert outputs[1] == outputs[0]
