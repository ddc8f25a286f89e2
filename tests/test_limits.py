"""Limits: past the calls or request bytes in flight a call is RESOURCE_EXHAUSTED at once,
health still answers, the counters return to zero, and data calls leave threads free."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import msgspec
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_registry_pb2 as rpb

from . import builders as b
from .conftest import RunningServer, start_server

MIB = 1024 * 1024


@pytest.fixture
def limited(database_url: str) -> Any:
    running = start_server(database_url, max_message_bytes=4 * MIB,
                           max_request_bytes_in_flight=6 * MIB, max_calls_in_flight=4)  # fmt: skip
    b.update_schema(running.registry, "cams", 0, b.add_scalar("a", "text"))
    try:
        yield running
    finally:
        running.channel.close()
        running.server.stop(grace=None)


def big_validation(size: int) -> mpb.ValidateMetadataRequest:
    text = "x" * (size // 4)
    records = [{"data_unit_id": f"u{i}", "metadata": {"a": text}} for i in range(4)]
    return mpb.ValidateMetadataRequest(schema="cams", records_json=msgspec.json.encode(records))


def test_a_burst_past_the_byte_limit_is_refused_at_once_and_health_answers(
    limited: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metareg.server.service.metadata import MetadataService

    real = MetadataService.validate
    release = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)  # hold the admitted calls in flight
        return real(*args, **kwargs)

    monkeypatch.setattr(MetadataService, "validate", slow)
    request = big_validation(5 * MIB // 2)  # two fit in 6 MiB at once, a third does not
    outcomes: list[grpc.StatusCode] = []

    def send() -> None:
        try:
            limited.metadata.ValidateMetadata(request, timeout=30)
            outcomes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            outcomes.append(error.code())

    senders = [threading.Thread(target=send) for _ in range(4)]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 10
    while outcomes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    refused_while_busy = outcomes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    health = health_pb2_grpc.HealthStub(limited.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1
    assert limited.registry.GetSchema(rpb.GetSchemaRequest(name="cams"), timeout=5)
    release.set()
    for sender in senders:
        sender.join(30)
    assert refused_while_busy == 2
    assert sorted(o.name for o in outcomes) == [
        "OK",
        "OK",
        "RESOURCE_EXHAUSTED",
        "RESOURCE_EXHAUSTED",
    ]
    limits = limited_limits(limited)
    assert (limits.calls, limits.data_calls, limits.bytes) == (0, 0, 0)


def test_past_the_call_limit_calls_are_refused_with_a_reason(
    limited: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metareg.server.service.metadata import MetadataService

    real = MetadataService.validate
    release = threading.Event()
    monkeypatch.setattr(MetadataService, "validate",
                        lambda *a, **k: (release.wait(10), real(*a, **k))[1])  # fmt: skip
    small = mpb.ValidateMetadataRequest(schema="cams", records=[b.metadata_record("u", {"a": "x"})])
    futures = [limited.metadata.ValidateMetadata.future(small, timeout=30) for _ in range(6)]
    time.sleep(0.5)
    release.set()
    codes, details = [], []
    for future in futures:
        try:
            future.result()
            codes.append("OK")
        except grpc.RpcError as error:
            codes.append(error.code().name)
            details.append(error.details() or "")
    assert all("the server is busy" in d for d in details)
    assert codes.count("OK") == 4
    assert codes.count("RESOURCE_EXHAUSTED") == 2


def limited_limits(server: RunningServer) -> Any:
    """The Limits object of a running server (found through its interceptor)."""
    from metareg.server.app.limits import LimitsInterceptor

    interceptors = server.server.grpc_server._state.interceptor_pipeline.interceptors
    return next(i for i in interceptors if isinstance(i, LimitsInterceptor)).limits


def test_memory_is_handed_back_after_a_burst(limited: RunningServer) -> None:
    """After big requests have come and gone, glibc's free memory goes back to the OS."""
    from metareg.server.app import limits

    calls: list[int] = []
    real = limits.release_free_memory
    limits.release_free_memory = lambda: calls.append(1) or real()  # type: ignore[func-returns-value]
    try:
        for _ in range(24):  # 24 x 3 MiB: past the 64 MiB that trigger a trim
            limited.metadata.ValidateMetadata(big_validation(3 * MIB), timeout=30)
    finally:
        limits.release_free_memory = real
    assert calls


def test_the_defaults_are_sane() -> None:
    from metareg.server.app import Config

    config = Config()
    assert config.max_calls_in_flight >= 4 * config.max_workers
    assert config.max_request_bytes_in_flight >= 4 * config.max_message_bytes
    with pytest.raises(ValueError, match="MAX_REQUEST_BYTES_IN_FLIGHT"):
        Config(max_request_bytes_in_flight=MIB)
    server = start_server.__defaults__
    assert server is None
