"""Regenerate the metareg.v1 Python modules from protos/ (or check they are current).

Usage:
    python scripts/generate_protos.py          # rewrite the generated files
    python scripts/generate_protos.py --check  # exit 1 if they differ from protos/
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = PROTO_ROOT / "metareg" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generated_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def generate(out_root: Path) -> None:
    """Run protoc over every .proto, writing modules under out_root/metareg/v1."""
    well_known = resources.files("grpc_tools") / "_proto"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PACKAGE_DIR.glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def check() -> list[str]:
    """Names of generated files that are missing, stale or unexpected."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir = Path(tmp) / "metareg" / "v1"
        fresh_dir.mkdir(parents=True)
        generate(Path(tmp))
        fresh = {p.name: p for p in generated_files(fresh_dir)}
        current = {p.name: p for p in generated_files(PACKAGE_DIR)}
        drift = sorted(set(fresh) ^ set(current))
        drift += sorted(
            name
            for name in set(fresh) & set(current)
            if not filecmp.cmp(fresh[name], current[name], shallow=False)
        )
        return drift


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift")
    if parser.parse_args().check:
        drift = check()
        if drift:
            print("generated code is out of date: " + ", ".join(drift), file=sys.stderr)
            print("run: python scripts/generate_protos.py", file=sys.stderr)
            return 1
        print("generated code matches protos/")
        return 0
    for stale in generated_files(PACKAGE_DIR):
        stale.unlink()
    generate(PROTO_ROOT)
    print("regenerated " + ", ".join(p.name for p in generated_files(PACKAGE_DIR)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
