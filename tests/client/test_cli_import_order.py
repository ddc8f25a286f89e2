"""`schema import --dry-run` lists changes and rejected entries in the import file's order
of keys, the same in every run (each run is a new process with its own hash seed)."""

from __future__ import annotations

import random
from pathlib import Path

from ..conftest import RunningServer
from .test_cli import metareg

KEYS = [f"key{i:02d}" for i in range(30)]


def dry_run(server: RunningServer, tmp_path: Path, document: str) -> list[str]:
    (tmp_path / "doc.yaml").write_text(document)
    outputs = set()
    for _ in range(3):
        done = metareg(server, "schema", "import", "s", "doc.yaml", "--dry-run", cwd=tmp_path)
        outputs.add((done.returncode, done.stdout + done.stderr))
    assert len(outputs) == 1, outputs
    ((_, output),) = outputs
    return output.splitlines()


def test_dry_run_changes_come_in_document_order(server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "first.yaml").write_text("".join(f"{k}: varchar\n" for k in KEYS) + "gone: text\n")
    assert metareg(server, "schema", "import", "s", "first.yaml", cwd=tmp_path).returncode == 0
    order = random.Random(3).sample(KEYS, len(KEYS))
    lines = dry_run(
        server, tmp_path, "".join(f"{k}: {{type: varchar, max_length: 9}}\n" for k in order)
    )
    changes = [line.split()[1] for line in lines if line.startswith("  set_scalar ")]
    assert changes == order
    assert lines[-2:] == ["  delete_key gone (soft)", "no stored record is affected"]


def test_rejected_entries_come_in_document_order(server: RunningServer, tmp_path: Path) -> None:
    order = random.Random(4).sample(KEYS, len(KEYS))
    lines = dry_run(server, tmp_path, "".join(f"{k}: nosuchtype\n" for k in order))
    rejected = [line.split('"')[1] for line in lines if line.startswith('  document["')]
    assert rejected == order[:20]  # the first 20 are shown
    assert lines[-1] == "  … and 10 more"
