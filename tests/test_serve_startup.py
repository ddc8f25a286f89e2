"""`metareg serve` and `db upgrade` refuse what they cannot use before touching anything:
a database URL of another kind is one line naming its scheme, a busy port leaves no
database behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .pgcluster import free_port

METAREG = str(Path(sys.executable).with_name("metareg"))


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METAREG_DATABASE_URL": ""}
    return subprocess.run(
        [METAREG, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("mysql://x", ["'mysql'", "sqlite", "postgresql"]),
        ("oracle://scott:tiger@h/db", ["'oracle'", "sqlite", "postgresql"]),
        ("postgresql+psycopg2://u@h/db", ["'psycopg2'", "postgresql+psycopg://"]),
        ("not a url", ["bad database URL 'not a url'", "sqlite:///"]),
        ("postgresql://u:secret@h:notaport/db", ["bad database URL", "notaport"]),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"]])
def test_an_unusable_database_url_is_one_line(
    tmp_path: Path, command: list[str], url: str, names: list[str]
) -> None:
    port = ["--port", str(free_port())] if command == ["serve"] else []
    done = run(*command, *port, "--database-url", url, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: bad database URL "), done.stderr
    for name in names:
        assert name in lines[0]
    assert "secret" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_leaves_no_database_behind(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(
            "serve", "--port", str(port), "--workers", workers,
            "--database-url", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port} (is the port in use?)"
    ]
    assert list(tmp_path.iterdir()) == []
