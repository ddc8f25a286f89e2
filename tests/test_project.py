"""Project hygiene: generated code in sync with protos/, lint and types clean, packaging."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
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


# None: SourceRecord lives in the leaf _source, which both readers import.
_ALLOWED_CLIENT_IMPORTS: set[tuple[str, str]] = set()


def _client_imports() -> dict[str, set[str]]:
    """Each client module and the client modules it imports when it runs (`from ._x
    import`, `from . import _x`), at module level and inside functions alike; imports
    under `if TYPE_CHECKING:` are for type checkers only and never run."""
    import ast

    def imports(node: ast.AST) -> Iterator[ast.ImportFrom]:
        if isinstance(node, ast.ImportFrom):
            yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in (
                "TYPE_CHECKING",
                "typing.TYPE_CHECKING",
            ):
                for other in child.orelse:
                    yield from imports(other)
                continue
            yield from imports(child)

    modules = {path.stem: path for path in (ROOT / "client").glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in imports(ast.parse(path.read_text(), str(path))):
            if node.level != 1:
                continue
            if node.module:
                imported.add(node.module.split(".")[0])
            else:
                imported.update(alias.name for alias in node.names)
        graph[name] = {
            other
            for other in imported & modules.keys()
            if other != name and (name, other) not in _ALLOWED_CLIENT_IMPORTS
        }
    return graph


def test_client_modules_import_one_another_without_a_cycle() -> None:
    graph = _client_imports()
    # The seams: results and errors need no bundle, errors no transport.
    assert not graph["_results"] & {"_bundle", "_bundle_results", "_errors", "_transport"}
    assert not graph["_errors"] & {"_bundle", "_bundle_results", "_transport", "_values"}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise AssertionError("client import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
