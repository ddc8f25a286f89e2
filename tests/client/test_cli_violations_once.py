"""A rejected schema entry is printed once: in the violation lines, not also in the message."""

from __future__ import annotations

from pathlib import Path

from ..conftest import RunningServer
from .test_cli import metareg


def test_an_unknown_type_is_printed_once(server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("k: nosuchtype\n")
    for dry_run in ([], ["--dry-run"]):
        done = metareg(server, "schema", "import", "s", "bad.yaml", *dry_run, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert done.stderr.count('unknown type "nosuchtype"') == 1, done.stderr
        assert done.stderr.splitlines()[0] == (
            "error: INVALID_ARGUMENT: bad.yaml: schema document cannot be imported: 1 invalid entry"
        )
        assert done.stderr.splitlines()[1].startswith('  document["k"]: unknown type "nosuchtype"')
