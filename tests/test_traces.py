"""OpenTelemetry traces: a real ApplyBundle over a real server makes one server span with
a child span per stage (the SDK's in-memory exporter), the caller's trace is joined, and
`metareg serve` sets traces up from OTEL_* alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from metareg.server.app import Config, create_server
from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2_grpc

from . import builders as b
from .conftest import CHANNEL_OPTIONS, RunningServer
from .pgcluster import free_port
from .test_app import wait_serving

STAGES = [
    "bundle.decode_validate",
    "bundle.lock",
    "bundle.load",
    "bundle.plan",
    "bundle.write",
    "bundle.commit",
]
APPLY = "/metareg.v1.MetadataService/ApplyBundle"
CANARY_ID = "canary-unit-0b7e55"
CANARY_VALUE = "canary-value-f31c9a"


@pytest.fixture
def traced(database_url: str) -> Iterator[tuple[RunningServer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = Config(database_url=database_url, host="127.0.0.1", port=0, max_workers=8)
    server, port = create_server(config, tracer_provider=provider)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
    running = RunningServer(f"127.0.0.1:{port}", port, server, channel, database_url)
    try:
        b.update_schema(running.registry, "cams", 0, b.add_scalar("camera", "text"),
                        b.add_scalar("score", "number"))  # fmt: skip
        exporter.clear()
        yield running, exporter
    finally:
        channel.close()
        server.stop(grace=None)
        provider.shutdown()


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    found = [
        s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    for span in found:
        assert span.context is not None
        assert span.context.trace_id == parent.context.trace_id
    return sorted(found, key=lambda s: s.start_time or 0)


def only_server_span(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == name
    return server


def every_attribute_value(spans: tuple[ReadableSpan, ...]) -> list[str]:
    return [str(value) for span in spans for value in (span.attributes or {}).values()]


@pytest.mark.parametrize("form", ["typed", "json"])
def test_an_apply_bundle_is_one_server_span_with_a_child_per_stage(
    traced: tuple[RunningServer, InMemorySpanExporter], form: str
) -> None:
    running, exporter = traced
    records = {f"{CANARY_ID}-{i}": {"camera": CANARY_VALUE, "score": i} for i in range(3)}
    if form == "typed":
        request = mpb.ApplyBundleRequest(
            schema="cams", updates=[b.metadata_update(d, m) for d, m in records.items()]
        )
    else:
        as_json = [{"data_unit_id": d, "metadata": m} for d, m in records.items()]
        request = mpb.ApplyBundleRequest(schema="cams", updates_json=json.dumps(as_json).encode())
    assert running.metadata.ApplyBundle(request).applied_count == 3
    spans = exporter.get_finished_spans()
    server = only_server_span(spans, APPLY)
    assert server.status.status_code is StatusCode.UNSET  # not an error
    assert (server.attributes or {})["rpc.grpc.status_code"] == 0
    stages = children(spans, server)
    names = [s.name for s in stages]
    assert sorted(names) == sorted(STAGES)  # each once
    # Decoding may come first (the schema version is known before the transaction).
    assert [n for n in names if n != "bundle.decode_validate"] == STAGES[1:]
    assert len(spans) == 1 + len(STAGES)  # nothing else, nothing nested deeper
    for stage in stages:
        assert server.start_time is not None
        assert stage.start_time is not None
        assert server.start_time <= stage.start_time
        assert stage.end_time is not None
        assert server.end_time is not None
        assert stage.end_time <= server.end_time
    by_name = {s.name: s for s in stages}
    for name in ("bundle.load", "bundle.plan", "bundle.write"):
        assert (by_name[name].attributes or {})["metareg.records"] == 3
    for value in every_attribute_value(spans):
        assert CANARY_ID not in value
        assert CANARY_VALUE not in value


def test_a_rejected_bundle_is_an_error_span_without_write_or_commit(
    traced: tuple[RunningServer, InMemorySpanExporter],
) -> None:
    running, exporter = traced
    bad = [b.metadata_update(CANARY_ID, {"score": CANARY_VALUE})]
    with pytest.raises(grpc.RpcError) as raised:
        running.metadata.ApplyBundle(mpb.ApplyBundleRequest(schema="cams", updates=bad))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    spans = exporter.get_finished_spans()
    server = only_server_span(spans, APPLY)
    assert (server.attributes or {})["rpc.grpc.status_code"] == 3  # INVALID_ARGUMENT
    # The semantic conventions leave a server span's status unset for a caller's mistake.
    assert server.status.status_code is StatusCode.UNSET
    names = {s.name for s in children(spans, server)}
    assert names == set(STAGES) - {"bundle.write", "bundle.commit"}
    for value in every_attribute_value(spans):
        assert CANARY_VALUE not in value
    assert all(CANARY_VALUE not in str(s.status.description or "") for s in spans)


def test_a_call_joins_the_callers_trace(
    traced: tuple[RunningServer, InMemorySpanExporter],
) -> None:
    running, exporter = traced
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    running.metadata.ApplyBundle(
        mpb.ApplyBundleRequest(schema="cams", updates=[b.metadata_update("u", {"score": 1})]),
        metadata=[("traceparent", f"00-{trace_id}-{parent_id}-01")],
    )
    server = only_server_span(exporter.get_finished_spans(), APPLY)
    assert server.context is not None
    assert server.parent is not None
    assert f"{server.context.trace_id:032x}" == trace_id
    assert f"{server.parent.span_id:016x}" == parent_id


def test_other_calls_are_server_spans_too(
    traced: tuple[RunningServer, InMemorySpanExporter],
) -> None:
    running, exporter = traced
    b.get_schema(running.registry, "cams")
    (span,) = exporter.get_finished_spans()
    assert span.name == "/metareg.v1.SchemaRegistry/GetSchema"
    assert span.kind is SpanKind.SERVER


def test_excluded_services_get_no_spans(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    monkeypatch.setenv("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", "grpc.health.v1.Health")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server, port = create_server(
        Config(database_url=database_url, host="127.0.0.1", port=0), tracer_provider=provider
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            b.update_schema(
                schema_registry_pb2_grpc.SchemaRegistryStub(channel), "cams", 0,
                b.add_scalar("camera", "text"),
            )  # fmt: skip
    finally:
        server.stop(grace=None)
        provider.shutdown()
    names = [span.name for span in exporter.get_finished_spans()]
    assert names == ["/metareg.v1.SchemaRegistry/UpdateSchema"]


METAREG = str(Path(sys.executable).with_name("metareg"))


def serve_env(**otel: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, "METAREG_DATABASE_URL": "", **otel}


def test_metareg_serve_traces_from_otel_settings_alone(tmp_path: Path) -> None:
    """The console exporter, chosen by OTEL_TRACES_EXPORTER, prints each span on stdout."""
    port = free_port()
    env = serve_env(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="registry-under-test")
    process = subprocess.Popen(
        [METAREG, "serve", "--port", str(port), "--database-url",
         f"sqlite:///{tmp_path / 't.db'}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            registry = schema_registry_pb2_grpc.SchemaRegistryStub(channel)
            b.update_schema(registry, "cams", 0, b.add_scalar("camera", "text"))
            b.metadata_stub(channel).ApplyBundle(
                mpb.ApplyBundleRequest(
                    schema="cams", updates=[b.metadata_update(CANARY_ID, {"camera": "x"})]
                )
            )
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)  # the spans still buffered are flushed
    finally:
        process.kill()
    assert process.returncode == 0, err
    spans = parse_console_spans(out)
    names = [span["name"] for span in spans]
    assert APPLY in names
    assert set(STAGES) <= set(names)
    (apply,) = [span for span in spans if span["name"] == APPLY]
    assert apply["resource"]["attributes"]["service.name"] == "registry-under-test"
    assert CANARY_ID not in out


def parse_console_spans(text: str) -> list[dict[str, Any]]:
    """The console exporter's output: JSON objects one after another."""
    decoder = json.JSONDecoder()
    spans, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return spans
        span, position = decoder.raw_decode(text, position)
        spans.append(span)


@pytest.mark.parametrize(
    ("otel", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "nosuch"}, "error: OTEL_TRACES_EXPORTER: no trace exporter "
         "'nosuch' is installed"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
          "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
         "error: OTLP protocol 'carrier-pigeon' is not supported"),
    ],
)  # fmt: skip
def test_an_exporter_that_is_not_there_is_a_one_line_error(
    tmp_path: Path, otel: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [METAREG, "serve", "--port", str(free_port())], cwd=tmp_path, env=serve_env(**otel),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert list(tmp_path.iterdir()) == []


def test_when_traces_are_wanted() -> None:
    from metareg.server.app.tracing import traces_wanted

    assert not traces_wanted({})
    assert not traces_wanted({"OTEL_SERVICE_NAME": "x"})
    assert not traces_wanted({"OTEL_TRACES_EXPORTER": "none"})
    assert traces_wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert traces_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert traces_wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"})
    assert not traces_wanted({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"})
