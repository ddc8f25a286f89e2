"""The operations benchmark: what Prometheus metrics and JSON logs cost.

Run from the repository root:

    .venv/bin/python -m bench.ops                   # about 4 minutes
    .venv/bin/python -m bench.ops --seconds 1 --records 2000 --repeats 1   # a smoke run

Two `metareg serve` processes on SQLite run side by side: one with metrics and JSON
logs both off (the defaults), one with both on (`METAREG_METRICS_PORT`,
`METAREG_LOG_FORMAT=json`). Each repetition measures both, in alternating order, with:

  schema  GetSchema (latest) from --threads client threads for --seconds (calls/s)
  apply   --records new records applied with the Python client's Bundle (records/s)

Each figure is the median of --repeats repetitions, and the ratio is on / off (target:
at least 0.95). Afterwards the "on" server's /metrics must have counted the calls, and
every line of its log must be a JSON object. In process, the cost of one RPC log line
(text and JSON) and of one call's metrics is timed too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import timeit
import urllib.request
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import grpc

from metareg.v1 import schema_registry_pb2, schema_registry_pb2_grpc

from . import workload
from .calls import Rates, measure, say
from .endtoend import sqlite_databases
from .loader import apply_with_client
from .pg import free_port
from .report import Row, Target, arguments, environment, render_table, write_results
from .server import CHANNEL_OPTIONS, REPO_ROOT, ServerProcess, running_server
from .stats import median

TARGET_RATIO = Target(">=", 0.95)
MODES = ("off", "on")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ops", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each GetSchema run")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--records", type=int, default=20_000, help="records per apply run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    return parser.parse_args(argv)


def schema_calls(server: ServerProcess, channel: grpc.Channel) -> Callable[[], object]:
    registry = schema_registry_pb2_grpc.SchemaRegistryStub(channel)
    request = schema_registry_pb2.GetSchemaRequest(name=workload.SCHEMA_NAME)
    return lambda: registry.GetSchema(request, timeout=30)


def run_once(
    server: ServerProcess, call: Callable[[], object], args: argparse.Namespace, first_index: int
) -> tuple[float, float]:
    """GetSchema calls/s, then ApplyBundle records/s of fresh records, on `server`."""
    rps = measure([call], args.threads, args.seconds)
    records = workload.generate(args.records, first_index=first_index)
    run = apply_with_client(f"127.0.0.1:{server.port}", records)
    return rps, run.rate


def check_on_server(server: ServerProcess, metrics_port: int, expected_bundles: int) -> None:
    """The "on" server really counted the calls and wrote JSON lines only."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    line = 'metareg_rpc_requests_total{code="OK",method="/metareg.v1.MetadataService/ApplyBundle"}'
    counted = [row for row in text.splitlines() if row.startswith(line)]
    if not counted or float(counted[0].split()[-1]) < expected_bundles:
        raise RuntimeError(f"the metrics did not count the bundles: {counted}")
    lines = server.log_path.read_text().splitlines()
    for row in lines:
        json.loads(row)  # raises on a line that is not JSON
    if not any('"method":"/metareg.v1.SchemaRegistry/GetSchema"' in row for row in lines):
        raise RuntimeError("the JSON log has no GetSchema line")


def _per_call_us(action: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(action, number=number, repeat=5)) / number * 1e6


def micro_costs(number: int = 20_000) -> dict[str, float]:
    """Microseconds per RPC log line (text, JSON; each written and flushed to /dev/null,
    as a handler does to stderr) and per call's metrics (a counter and a histogram)."""
    from prometheus_client import CollectorRegistry

    from metareg.server.api.call_notes import CallNotes
    from metareg.server.app.logs import CachedTimeFormatter, JsonFormatter, JsonRpcLog, RpcLog
    from metareg.server.app.metrics import Metrics
    from metareg.server.app.server import RPC_METHODS

    method = "/metareg.v1.SchemaRegistry/GetSchema"
    notes = CallNotes()
    notes.schema = workload.SCHEMA_NAME
    costs = {}
    with open(os.devnull, "w") as sink:
        for name, formatter in (("text", CachedTimeFormatter()), ("json", JsonFormatter())):
            handler = logging.StreamHandler(sink)
            handler.setFormatter(formatter)
            logger = logging.getLogger(f"bench.ops.{name}")
            logger.propagate = False
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            text_log, json_log = RpcLog(logger), JsonRpcLog(logger)
            line: Callable[[], object] = (
                partial(text_log, method, "OK", 0.42)
                if name == "text"
                else partial(json_log, method, "OK", 0.42, "ipv4:127.0.0.1:50000", notes)
            )
            costs[f"log_{name}_us"] = _per_call_us(line, number)
            logger.removeHandler(handler)
    metrics = Metrics(RPC_METHODS, schema_labels=100, registry=CollectorRegistry())
    observe = metrics.observer_for(method)
    assert observe is not None
    costs["metrics_call_us"] = _per_call_us(partial(observe, grpc.StatusCode.OK, 0.0004), number)
    return costs


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    micro = micro_costs()
    say(
        f"in process: log line text {micro['log_text_us']:.1f} us, JSON "
        f"{micro['log_json_us']:.1f} us; a call's metrics {micro['metrics_call_us']:.1f} us"
    )
    rates = {mode: (Rates(), Rates()) for mode in MODES}  # (GetSchema rps, apply rec/s)
    metrics_port = free_port()
    settings = {"off": {}, "on": {"METAREG_METRICS_PORT": str(metrics_port),
                                  "METAREG_LOG_FORMAT": "json"}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="metareg-ops-") as tmp:
        workdir = Path(tmp)
        databases = sqlite_databases(workdir)
        with (
            databases("ops-off") as off_url,
            databases("ops-on") as on_url,
            running_server(off_url, workdir, name="off", extra_env=settings["off"]) as off,
            running_server(on_url, workdir, name="on", extra_env=settings["on"]) as on,
        ):
            servers = {"off": off, "on": on}
            channels = {
                mode: grpc.insecure_channel(f"127.0.0.1:{s.port}", options=CHANNEL_OPTIONS)
                for mode, s in servers.items()
            }
            try:
                calls = {}
                for mode, server in servers.items():
                    server.create_schema()
                    calls[mode] = schema_calls(server, channels[mode])
                    measure([calls[mode]], args.threads, min(1.0, args.seconds))  # warm-up
                for repetition in range(args.repeats):
                    order = MODES if repetition % 2 == 0 else MODES[::-1]
                    for mode in order:
                        first = repetition * args.records
                        rps, rec_s = run_once(servers[mode], calls[mode], args, first)
                        rates[mode][0].add("schema", rps)
                        rates[mode][1].add("apply", rec_s)
                        say(f"#{repetition + 1} {mode}: GetSchema {rps:,.0f} calls/s, "
                            f"ApplyBundle {rec_s:,.0f} records/s")  # fmt: skip
                bundles = args.repeats * -(-args.records // 1000)
                check_on_server(on, metrics_port, bundles)
            finally:
                for channel in channels.values():
                    channel.close()
    rows = table(rates, micro)
    print(f"\nmetareg operations benchmark: metrics and JSON logs off / on, {args.threads} "
          f"threads x {args.seconds:g} s of GetSchema and {args.records:,} records applied "
          f"per figure, median of {args.repeats}; {environment()['cpus']} CPUs")  # fmt: skip
    print(render_table(rows))
    payload: dict[str, object] = {
        "benchmark": "ops",
        "arguments": arguments(args),
        "environment": environment(),
        "elapsed_seconds": time.perf_counter() - started,
        "table": [row.to_json() for row in rows],
        "runs": {mode: {"schema": r[0].runs, "apply": r[1].runs} for mode, r in rates.items()},
        "micro_us": micro,
    }
    path = write_results(args.results_dir, payload, name="ops")
    print(f"\nresults: {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    say(f"done in {time.perf_counter() - started:.0f}s")


def table(rates: dict[str, tuple[Rates, Rates]], micro: dict[str, float]) -> list[Row]:
    schema = {mode: rates[mode][0].rate("schema") for mode in MODES}
    apply = {mode: rates[mode][1].rate("apply") for mode in MODES}
    ratios = {
        kind: median([on / off for off, on in zip(
            rates["off"][index].runs[kind], rates["on"][index].runs[kind], strict=True
        )])
        for index, kind in enumerate(("schema", "apply"))
    }  # fmt: skip
    return [
        Row("ops.schema_off", "GetSchema, metrics and JSON logs off", schema["off"], "rps",
            spread=rates["off"][0].spread("schema")),
        Row("ops.schema_on", "GetSchema, metrics and JSON logs on", schema["on"], "rps",
            spread=rates["on"][0].spread("schema")),
        Row("ops.schema_ratio", "GetSchema on / off (median of pairs)", ratios["schema"], "x",
            TARGET_RATIO),
        Row("ops.apply_off", "ApplyBundle, metrics and JSON logs off", apply["off"], "rec/s",
            spread=rates["off"][1].spread("apply")),
        Row("ops.apply_on", "ApplyBundle, metrics and JSON logs on", apply["on"], "rec/s",
            spread=rates["on"][1].spread("apply")),
        Row("ops.apply_ratio", "ApplyBundle on / off (median of pairs)", ratios["apply"], "x",
            TARGET_RATIO),
        Row("ops.log_text", "RPC log line, text (in process)", round(micro["log_text_us"], 1),
            "us"),
        Row("ops.log_json", "RPC log line, JSON (in process)", round(micro["log_json_us"], 1),
            "us"),
        Row("ops.metrics_call", "one call's metrics (in process)",
            round(micro["metrics_call_us"], 1), "us"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
