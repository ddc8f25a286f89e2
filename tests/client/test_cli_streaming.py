"""Large files are streamed: the CLI's memory does not grow with the number of lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metareg.client import Client

from ..conftest import RunningServer

METAREG = Path(sys.executable).with_name("metareg")
# Runs a command and prints the peak resident set size of it (in KiB on Linux).
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "assert done.returncode == 0, done.stderr\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def write_lines(path: Path, count: int) -> Path:
    line = {"data_unit_id": "", "metadata": {"camera_id": "cam-7", "score": 0.5, "night": True}}
    with path.open("w") as stream:
        for i in range(count):
            line["data_unit_id"] = f"unit-{i:07d}"
            stream.write(json.dumps(line) + "\n")
    return path


def peak_rss_mib(server: RunningServer, path: Path) -> float:
    env = {**os.environ, "METAREG_ADDRESS": server.address}
    command = [str(METAREG), "metadata", "validate", "cams", str(path), "--quiet"]
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command],
        capture_output=True, text=True, timeout=300, env=env, cwd=path.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout) / 1024


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_memory_does_not_grow_with_the_file(server: RunningServer, tmp_path: Path) -> None:
    with Client(server.address) as client:
        client.import_schema_from_dict(
            "cams", {"camera_id": "varchar", "score": "number", "night": "boolean"}
        )
    small = peak_rss_mib(server, write_lines(tmp_path / "small.jsonl", 5_000))
    large = peak_rss_mib(server, write_lines(tmp_path / "large.jsonl", 100_000))
    # Loading 100,000 parsed records at once would take well over 50 MiB more.
    assert large - small < 12, (small, large)
    assert large < 200
