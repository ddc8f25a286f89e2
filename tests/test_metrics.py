"""Prometheus metrics on a real server: exact counts after a known sequence of calls,
label values that never come from a request (but the schema name), the schema label
cap, one scrape that adds up both workers of `--workers 2`, and metrics off costing
no import at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from metareg.server.app.server import RPC_METHODS
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer, start_server
from .pgcluster import free_port
from .test_workers import CHANNELS_PER_WORKER, connect_to_both_workers, running_workers

REGISTRY = "/metareg.v1.SchemaRegistry/"
METADATA = "/metareg.v1.MetadataService/"
CANARY_ID = "canary-unit-6c0f1e"
CANARY_VALUE = "canary-value-a7d4b2"
CANARY_SCHEMA = "canary-schema-3e9d"  # never created: only written schemas are labels
CANARY_METHOD = "/canary.Service/CanaryMethod"


def scrape(port: int, host: str = "127.0.0.1") -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text: str = response.read().decode()
    return text


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called `name`, by its sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def by(text: str, name: str, *labels: str) -> dict[Any, float]:
    """Non-zero samples of `name`, keyed by the values of `labels`."""
    keyed = {}
    for key, value in samples(text, name).items():
        values = dict(key)
        if value:
            keyed[tuple(values[label] for label in labels)] = value
    return keyed


@pytest.fixture
def metered(database_url: str) -> Iterator[tuple[RunningServer, int]]:
    port = free_port()
    running = start_server(database_url, metrics_port=port)
    try:
        yield running, port
    finally:
        running.channel.close()
        running.server.stop(grace=None)


def code_of(call: Any, request: Any) -> grpc.StatusCode:
    try:
        call(request, timeout=30)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def raw_call(channel: grpc.Channel, method: str, payload: bytes) -> grpc.StatusCode:
    call = channel.unary_unary(
        method, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
    )
    return code_of(call, payload)


def known_sequence(running: RunningServer) -> None:
    """The calls whose counts the scraping test expects, each checked as it goes."""
    registry, metadata = running.registry, running.metadata
    ok, invalid = grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT
    b.update_schema(registry, "cams", 0, b.add_scalar("camera", "text"),
                    b.add_scalar("score", "number"))  # fmt: skip
    for _ in range(3):
        assert code_of(registry.GetSchema, rpb.GetSchemaRequest(name="cams")) == ok
    for _ in range(2):
        missing = rpb.GetSchemaRequest(name=CANARY_SCHEMA)
        assert code_of(registry.GetSchema, missing) == grpc.StatusCode.NOT_FOUND
    assert code_of(registry.GetSchema, rpb.GetSchemaRequest(name="Bad Name")) == invalid
    assert raw_call(running.channel, REGISTRY + "GetSchema", b"\x0a\xff\xff\xff\xff\x0f") == invalid
    assert raw_call(running.channel, CANARY_METHOD, b"") == grpc.StatusCode.UNIMPLEMENTED
    assert raw_call(running.channel, REGISTRY + "NoSuchMethod", b"") == (
        grpc.StatusCode.UNIMPLEMENTED
    )
    three = [b.metadata_update(f"{CANARY_ID}-{i}", {"camera": CANARY_VALUE}) for i in range(3)]
    assert code_of(metadata.ApplyBundle, mpb.ApplyBundleRequest(schema="cams", updates=three)) == ok
    one_bad = [
        b.metadata_update("unit-a", {"score": 2.5}),
        b.metadata_update("unit-b", {"score": CANARY_VALUE}),  # rule "type"
    ]
    partial = mpb.ApplyBundleRequest(schema="cams", updates=one_bad, partial=True)
    assert code_of(metadata.ApplyBundle, partial) == ok
    two_bad = [
        b.metadata_update("unit-c", {"score": CANARY_VALUE}),  # rule "type"
        b.metadata_update("unit-d", {"canary_key": 1.0}),  # rule "unknown_key"
    ]
    atomic = mpb.ApplyBundleRequest(schema="cams", updates=two_bad)
    assert code_of(metadata.ApplyBundle, atomic) == invalid
    keyed = mpb.ApplyBundleRequest(
        schema="cams", idempotency_key="canary-key",
        updates=[b.metadata_update(f"unit-{i}", {"camera": "x"}) for i in range(2)],
    )  # fmt: skip
    for _ in range(2):  # the second is a replay: written once
        assert code_of(metadata.ApplyBundle, keyed) == ok
    check = mpb.ValidateMetadataRequest(
        schema="cams",
        records=[b.metadata_record("unit-e", {"score": "no"}), b.metadata_record("f", {})],
    )
    assert code_of(metadata.ValidateMetadata, check) == ok
    health = health_pb2_grpc.HealthStub(running.channel)
    for _ in range(2):
        assert code_of(health.Check, health_pb2.HealthCheckRequest()) == ok


def test_a_scrape_shows_exact_counts_after_a_known_sequence(
    metered: tuple[RunningServer, int],
) -> None:
    running, port = metered
    known_sequence(running)
    text = scrape(port)
    requests = by(text, "metareg_rpc_requests_total", "method", "code")
    assert requests == {
        (REGISTRY + "UpdateSchema", "OK"): 1,
        (REGISTRY + "GetSchema", "OK"): 3,
        (REGISTRY + "GetSchema", "NOT_FOUND"): 2,
        (REGISTRY + "GetSchema", "INVALID_ARGUMENT"): 2,
        (METADATA + "ApplyBundle", "OK"): 4,
        (METADATA + "ApplyBundle", "INVALID_ARGUMENT"): 1,
        (METADATA + "ValidateMetadata", "OK"): 1,
        ("/grpc.health.v1.Health/Check", "OK"): 2,
    }
    per_method = Counter[tuple[str]]()
    for (method, _), count in requests.items():
        per_method[(method,)] += int(count)
    assert by(text, "metareg_rpc_duration_seconds_count", "method") == per_method
    infinite = {
        (method,): value
        for (method, le), value in by(
            text, "metareg_rpc_duration_seconds_bucket", "method", "le"
        ).items()
        if le == "+Inf"
    }
    assert infinite == per_method
    # 3 applied, then 1 of the partial bundle's 2, then the keyed bundle's 2 once.
    assert by(text, "metareg_records_written_total", "schema") == {("cams",): 6}
    assert by(text, "metareg_violations_total", "rule") == {("type",): 3, ("unknown_key",): 1}
    assert samples(text, "metareg_bundle_records_count") == {(): 5}  # the replay too
    assert samples(text, "metareg_bundle_records_sum") == {(): 3 + 2 + 2 + 2 + 2}
    assert samples(text, "metareg_calls_in_flight") == {(): 0}
    assert samples(text, "metareg_db_pool_connections_max") == {(): 16}  # 2 x max_workers 8
    (in_use,) = samples(text, "metareg_db_pool_connections_in_use").values()
    (idle,) = samples(text, "metareg_db_pool_connections_idle").values()
    assert in_use == 0
    assert 1 <= idle <= 16
    assert samples(text, "metareg_database_up") == {(): 1}
    assert samples(text, "process_resident_memory_bytes")[()] > 0  # the process's own


def test_no_label_value_comes_from_a_request_but_the_schema_name(
    metered: tuple[RunningServer, int],
) -> None:
    running, port = metered
    known_sequence(running)
    token_like = "mrk_" + "c" * 43
    with pytest.raises(grpc.RpcError):
        running.registry.GetSchema(
            rpb.GetSchemaRequest(name="cams"), metadata=[("authorization", f"Bearer {token_like}")]
        )  # no key exists: a token is still checked, and fails
    text = scrape(port)
    for canary in (CANARY_ID, CANARY_VALUE, CANARY_SCHEMA, "canary", token_like[4:]):
        assert canary not in text
    allowed = {
        "method": set(RPC_METHODS),
        "code": {code.name for code in grpc.StatusCode},
        "schema": {"cams", "_other"},
        "rule": {"type", "unknown_key", "_other"},
        "le": None,  # histogram bounds
    }
    seen = set()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("metareg_"):
            continue
        for sample in family.samples:
            for label, value in sample.labels.items():
                assert label in allowed, (family.name, label)
                choices = allowed[label]
                if choices is not None:
                    assert value in choices, (family.name, label, value)
                seen.add(label)
    assert seen == set(allowed)


def test_schema_labels_stop_at_the_cap(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "metareg.db"
    path.write_bytes(sqlite_template.read_bytes())
    port = free_port()
    running = start_server(f"sqlite:///{path}", metrics_port=port, metrics_schema_labels=1)
    try:
        for name in ("first", "second", "third"):
            b.update_schema(running.registry, name, 0, b.add_scalar("a", "text"))
            update = b.metadata_update("unit", {"a": name})
            running.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema=name, updates=[update]))
        written = by(scrape(port), "metareg_records_written_total", "schema")
    finally:
        running.channel.close()
        running.server.stop(grace=None)
    assert written == {("first",): 1, ("_other",): 2}


def test_a_busy_metrics_port_is_refused_before_serving(tmp_path: Path) -> None:
    running = start_server(f"sqlite:///{tmp_path / 'a.db'}", metrics_port=free_port())
    try:
        port = scrape_port(running)  # held by the endpoint until the server stops
        with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            start_server(f"sqlite:///{tmp_path / 'b.db'}", metrics_port=port)
    finally:
        running.channel.close()
        running.server.stop(grace=None)


def scrape_port(running: RunningServer) -> int:
    from metareg.server.app.metrics import Endpoint

    for close in running.server.closers:
        endpoint = getattr(close, "__self__", None)
        if isinstance(endpoint, Endpoint):
            return endpoint.port
    raise AssertionError("no metrics endpoint")


def test_metrics_can_listen_on_another_interface(tmp_path: Path) -> None:
    port = free_port()
    running = start_server(
        f"sqlite:///{tmp_path / 'a.db'}", metrics_port=port, metrics_host="127.0.0.2"
    )
    try:
        assert "# TYPE metareg_calls_in_flight gauge" in scrape(port, "127.0.0.2")
        with pytest.raises(urllib.error.URLError, match="refused"):
            scrape(port)  # 127.0.0.1, the gRPC interface
    finally:
        running.channel.close()
        running.server.stop(grace=None)


def test_metrics_stop_with_the_server(tmp_path: Path) -> None:
    port = free_port()
    running = start_server(f"sqlite:///{tmp_path / 'a.db'}", metrics_port=port)
    assert "# TYPE metareg_rpc_requests_total counter" in scrape(port)
    running.channel.close()
    running.server.stop(grace=None)
    with pytest.raises(urllib.error.URLError, match="refused"):
        scrape(port)


NOTHING_IMPORTED = """
import json, sys
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from metareg.server.app import Config, create_server
from metareg.v1 import schema_registry_pb2 as rpb, schema_registry_pb2_grpc

server, port = create_server(Config(database_url=sys.argv[1], port=0))
server.start()
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    registry = schema_registry_pb2_grpc.SchemaRegistryStub(channel)
    registry.ListSchemas(rpb.ListSchemasRequest())
    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
server.stop(None)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_with_metrics_and_traces_off_neither_library_is_imported(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROMETHEUS_"))}
    done = subprocess.run(
        [sys.executable, "-c", NOTHING_IMPORTED, f"sqlite:///{tmp_path / 'm.db'}"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert "metareg" in modules
    assert "opentelemetry" not in modules
    assert "prometheus_client" not in modules


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"METAREG_METRICS_PORT": "70000"}, "error: METAREG_METRICS_PORT=70000 is out of range"),
        ({"METAREG_METRICS_PORT": "x"}, "error: METAREG_METRICS_PORT='x' is not a valid int"),
        ({"METAREG_METRICS_SCHEMA_LABELS": "-1"}, "error: METAREG_METRICS_SCHEMA_LABELS=-1 is out"),
    ],
)
def test_metrics_settings_out_of_range_are_one_line_errors(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("metareg")), "serve", "--port", str(free_port())],
        cwd=tmp_path, env={**os.environ, "METAREG_DATABASE_URL": "", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr


def test_the_metrics_port_must_differ_from_the_port() -> None:
    from metareg.server.app import Config

    with pytest.raises(ValueError, match="METAREG_METRICS_PORT=5000 is out of range: use another"):
        Config(port=5000, metrics_port=5000)


def test_one_scrape_adds_up_both_workers(tmp_path: Path) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path / 'metareg.db'}"
    with running_workers(
        "sqlite", url, tmp_path, "--metrics-port", str(port), env={"TMPDIR": str(tmp_path)}
    ) as server:
        try:
            connect_to_both_workers(server)  # one ListSchemas per channel
            opened = {pid: len(channels) for pid, channels in server.channels.items()}
            assert min(opened.values()) >= CHANNELS_PER_WORKER
            (directory,) = tmp_path.glob("metareg-metrics-*")  # the workers' files
            assert {p.name.split("_")[-1] for p in directory.iterdir()} == {
                f"{pid}.db" for pid in server.pids
            }
            text = scrape(port)
            assert by(text, "metareg_rpc_requests_total", "method", "code") == {
                (REGISTRY + "ListSchemas", "OK"): sum(opened.values())
            }
            assert by(text, "metareg_rpc_duration_seconds_count", "method") == {
                (REGISTRY + "ListSchemas",): sum(opened.values())
            }
            # Gauges are each worker's, sampled each second, and added up.
            deadline = time.monotonic() + 10
            while samples(scrape(port), "metareg_db_pool_connections_max") != {(): 32.0}:
                assert time.monotonic() < deadline, scrape(port)
                time.sleep(0.2)
            assert samples(scrape(port), "metareg_database_up") == {(): 1.0}
        finally:
            for channels in server.channels.values():
                for channel in channels:
                    channel.close()
    assert server.process.returncode == 0, server.log.text
    assert not list(tmp_path.glob("metareg-metrics-*"))  # removed by the parent


def test_a_busy_metrics_port_stops_workers_before_they_start(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = subprocess.run(
            [str(Path(sys.executable).with_name("metareg")), "serve", "--workers", "2",
             "--port", "0", "--metrics-port", str(busy),
             "--database-url", f"sqlite:///{tmp_path / 'm.db'}"],
            capture_output=True, text=True, timeout=60, env={**os.environ, "TMPDIR": str(tmp_path)},
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot serve metrics on 127.0.0.1:{busy} (is the port in use?)"
    ), result.stderr
    assert not list(tmp_path.glob("metareg-metrics-*"))
