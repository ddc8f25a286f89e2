"""The files benchmark: `metareg metadata validate`, `apply` and `export` of a big JSONL
file, each the real executable against `metareg serve` on SQLite, in one run.

    .venv/bin/python -m bench.files                    # 1,000,000 records (~15 minutes)
    .venv/bin/python -m bench.files --records 100000   # a quick run

The file holds the benchmark workload (bench.workload: 13 keys, 10% with a 512-d
embedding) as JSONL lines of JSON values. Each command's wall time gives records/s and
its peak RSS (the child's ru_maxrss) the client's memory. `apply` is the default,
all-or-nothing one: a validation pass over the whole file, then the apply pass. The
ceilings are measured in the same run, in process, as bench.metadata measures them: the
server's JSON fast path (decode and validate request bytes, no gRPC) and the raw
sqlite3.executemany of the rows the server writes, both on the first CEILING_RECORDS
records. Two more show where the file's own form and the export stand: the fast path on
the file's lines as the CLI sends them (embeddings as JSON numbers, not base64), and a
raw sqlite3 read of every stored record, paged as an export pages, nothing decoded.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from metareg.client._datafiles import read_jsonl
from metareg.client._json_form import json_array, quoted_id, record_json
from metareg.server.domain.fast_decoder import FastDecoder

from . import workload
from .rawsqlite import measure_raw_ceiling, prepare_bundles
from .report import Row, Target, arguments, environment, render_table, write_results
from .server import REPO_ROOT, metareg_command, running_server
from .stats import median
from .validation import decode_json_requests, metareg_validator

CEILING_RECORDS = 100_000
TARGETS = {
    "validate": Target(">=", 80_000),
    "apply": Target(">=", 40_000),
    "export": Target(">=", 80_000),
}
RSS_TARGET = Target("<=", 200)


@dataclass(frozen=True)
class CommandRun:
    name: str
    records: int
    seconds: float
    peak_rss_mib: float
    output: str

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def write_jsonl(path: Path, count: int, seed: int) -> int:
    """The workload as JSONL; returns the file's size in bytes."""
    encode = msgspec.json.Encoder().encode
    with path.open("wb") as out:
        for record in workload.iter_records(count, seed=seed):
            line = {
                "data_unit_id": record.data_unit_id,
                "metadata": workload.json_values(record.values),
            }
            out.write(encode(line) + b"\n")
    return path.stat().st_size


def run_command(name: str, records: int, args: Sequence[str], cwd: Path) -> CommandRun:
    """Run the metareg executable; wall time and peak RSS of that process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [*metareg_command(), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    out = process.stdout.read().decode() if process.stdout else ""
    err = process.stderr.read().decode() if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{name} exited {process.returncode}:\n{out}\n{err}")
    return CommandRun(name, records, seconds, usage.ru_maxrss / 1024, out.strip())


def fast_path_ceiling(count: int, seed: int, repeats: int) -> float:
    """Records/s of the server's JSON fast path on the first `count` records."""
    records = workload.generate(count, seed=seed)
    requests = [
        workload.json_bundle_request(chunk).SerializeToString()
        for chunk in workload.chunks(records, 1000)
    ]
    validator = metareg_validator()
    fast = FastDecoder(validator.state)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        if decode_json_requests(validator, requests, fast=fast):
            raise RuntimeError("the fast path rejected valid workload records")
        seconds.append(time.perf_counter() - started)
    return count / median(seconds)


def file_form_ceiling(data: Path, count: int, repeats: int) -> float:
    """Records/s of the same fast path on the first `count` lines of the file as the CLI
    sends them: each line's metadata passed through, embeddings as JSON numbers."""
    elements: list[bytes] = []
    for record in read_jsonl(data, pass_through=True):
        if len(elements) == count:
            break
        elements.append(record_json(quoted_id(record.data_unit_id), record.metadata_json))
    raws = [json_array(elements[i : i + 1000]) for i in range(0, len(elements), 1000)]
    fast = FastDecoder(metareg_validator().state)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        if any(fast.decode(raw) is None for raw in raws):
            raise RuntimeError("the fast path declined the file's valid records")
        seconds.append(time.perf_counter() - started)
    return len(elements) / median(seconds)


def raw_write_ceiling(count: int, seed: int, workdir: Path, repeats: int) -> float:
    records = workload.generate(count, seed=seed)
    timing = measure_raw_ceiling(prepare_bundles(records, 1000), workdir, repeats)
    return count / median(list(timing.seconds))


def raw_read_ceiling(database: Path, repeats: int) -> float:
    """Records/s of plain sqlite3 reading back every stored record the way an export
    pages through them (1000 in data_unit_id order after the last, then their
    embeddings), rows fetched but nothing decoded: what the database itself gives."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    page_query = (
        "SELECT data_unit_id, data, revision, updated_at FROM metadata_records "
        "WHERE schema_id = ? AND data_unit_id > ? ORDER BY data_unit_id LIMIT 1000"
    )
    vectors_query = (
        "SELECT data_unit_id, key, vector FROM metadata_embeddings "
        "WHERE schema_id = ? AND data_unit_id IN (SELECT value FROM json_each(?))"
    )
    seconds, count = [], 0
    try:
        (schema_id,) = connection.execute("SELECT max(schema_id) FROM metadata_records").fetchone()
        for _ in range(repeats):
            started, count, after = time.perf_counter(), 0, ""
            while rows := connection.execute(page_query, (schema_id, after)).fetchall():
                ids = [row[0] for row in rows]
                connection.execute(vectors_query, (schema_id, json.dumps(ids))).fetchall()
                count += len(rows)
                after = ids[-1]
            seconds.append(time.perf_counter() - started)
    finally:
        connection.close()
    return count / median(seconds)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=workload.DEFAULT_SEED)
    parser.add_argument("--repeats", type=int, default=3, help="for the ceilings")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "results")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[files] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="metareg-files-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        data = workdir / "workload.jsonl"
        say(f"writing {args.records:,} records")
        size = write_jsonl(data, args.records, args.seed)
        say(f"{size / 2**20:,.0f} MiB")
        runs: list[CommandRun] = []
        url = f"sqlite:///{workdir / 'files.db'}"
        with running_server(url, workdir, name="files") as server:
            server.create_schema()
            address = ["--address", f"127.0.0.1:{server.port}", "--timeout", "120", "-q"]
            schema = workload.SCHEMA_NAME
            for name, command in (
                ("validate", ["metadata", "validate", schema, str(data)]),
                ("apply", ["metadata", "apply", schema, str(data)]),
                ("export", ["metadata", "export", schema, "-o", str(workdir / "out.jsonl")]),
            ):
                say(f"metareg {' '.join(command[:2])}")
                runs.append(run_command(name, args.records, [*command, *address], workdir))
                say(f"  {runs[-1].rate:,.0f} records/s, {runs[-1].peak_rss_mib:,.0f} MiB")
            say("raw read ceiling")
            raw_read = raw_read_ceiling(workdir / "files.db", args.repeats)
        exported = sum(1 for _ in (workdir / "out.jsonl").open("rb"))
        if exported != args.records:
            raise RuntimeError(f"the export holds {exported} records, not {args.records}")
        ceiling_count = min(CEILING_RECORDS, args.records)
        say(f"ceilings on {ceiling_count:,} records")
        fast = fast_path_ceiling(ceiling_count, args.seed, args.repeats)
        file_form = file_form_ceiling(data, ceiling_count, args.repeats)
        raw = raw_write_ceiling(ceiling_count, args.seed, workdir, args.repeats)

    by_name = {run.name: run for run in runs}
    rows = [
        Row(f"F.{run.name}", f"metareg metadata {run.name} ({args.records:,} records)",
            run.rate, "rec/s", TARGETS[run.name])
        for run in runs
    ]  # fmt: skip
    rows += [
        Row(f"F.{run.name}.rss", f"{run.name}: peak client RSS", run.peak_rss_mib, "MiB",
            RSS_TARGET)
        for run in runs
    ]  # fmt: skip
    rows += [
        Row("C.fast", "ceiling: JSON fast path in process", fast, "rec/s"),
        Row(
            "C.fast.file",
            "ceiling: the same on the file's form (JSON number embeddings)",
            file_form,
            "rec/s",
        ),
        Row("C.raw", "ceiling: raw sqlite3.executemany", raw, "rec/s"),
        Row("C.read", "ceiling: raw sqlite3 read of the stored records", raw_read, "rec/s"),
        Row("R.validate", "validate / fast-path ceiling", by_name["validate"].rate / fast, "x"),
        Row("R.apply", "apply / raw write ceiling", by_name["apply"].rate / raw, "x"),
        Row("R.export", "export / raw write ceiling", by_name["export"].rate / raw, "x"),
        Row("R.export.read", "export / raw read ceiling", by_name["export"].rate / raw_read, "x"),
    ]
    print(render_table(rows))
    for run in runs:
        print(f"{run.name}: {run.output.splitlines()[0] if run.output else ''}")
    path = write_results(
        args.results,
        {
            "environment": environment(),
            "arguments": arguments(args),
            "file_bytes": size,
            "rows": [row.to_json() for row in rows],
        },
        name="files",
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
