"""Project hygiene: generated code in sync with protos/, lint and types clean, packaging."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_generated_code_matches_protos() -> None:
    result = run(sys.executable, "scripts/generate_protos.py", "--check")
    assert result.returncode == 0, result.stderr


def test_ruff_lint_and_format() -> None:
    lint = run(str(BIN / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout
    fmt = run(str(BIN / "ruff"), "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout


def test_mypy_strict() -> None:
    result = run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout


def test_every_package_directory_is_packaged() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = config["package-dir"]
    declared = set(config["packages"])
    for package, directory in roots.items():
        for init in (ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / directory)
            name = ".".join([package, *relative.parts]) if relative.parts else package
            assert name in declared, f"{name} is missing from [tool.setuptools] packages"


def test_server_layers_import_downward_only() -> None:
    """domain imports neither grpc nor SQL; storage no api; the client never the server."""
    forbidden = {
        "server/domain": ("grpc", "sqlalchemy", "metareg.v1", "..storage", "..api", "..service"),
        "server/storage": ("grpc", "metareg.v1", "..api", "..service", "..app"),
        "server/service": ("grpc", "metareg.v1", "..api", "..app"),
        "server/api": ("..app",),
    }
    for folder, names in forbidden.items():
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for name in names:
                assert f"import {name}" not in text, (path, name)
                assert f"from {name}" not in text, (path, name)
    for path in (ROOT / "client").rglob("*.py"):
        lines = [ln for ln in path.read_text().splitlines() if "metareg.server" in ln]
        # Only the CLI's serve/db commands may import the server, lazily (indented).
        assert all(ln.startswith("    ") for ln in lines), path
