"""Limits: past the calls or request bytes in flight a call is RESOURCE_EXHAUSTED at once,
health still answers, the counters return to zero, and data calls leave threads free."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
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


def serving_cams(database_url: str, **config: Any) -> Iterator[RunningServer]:
    """A server with `config` and schema "cams" (one text key), stopped afterwards."""
    running = start_server(database_url, **config)
    b.update_schema(running.registry, "cams", 0, b.add_scalar("a", "text"))
    try:
        yield running
    finally:
        running.channel.close()
        running.server.stop(grace=None)


@pytest.fixture
def limited(database_url: str) -> Iterator[RunningServer]:
    yield from serving_cams(database_url, max_message_bytes=4 * MIB,
                            max_request_bytes_in_flight=6 * MIB, max_calls_in_flight=4)  # fmt: skip


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


@pytest.fixture
def narrow(database_url: str) -> Iterator[RunningServer]:
    """Two data calls at once, six calls in all: more calls than data calls."""
    yield from serving_cams(database_url, max_workers=2, max_calls_in_flight=6)


def held(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> threading.Event:
    """Make owner.name wait for the returned event before doing its work."""
    real = getattr(owner, name)
    release = threading.Event()
    monkeypatch.setattr(owner, name, lambda *a, **k: (release.wait(20), real(*a, **k))[1])
    return release


def outcome(future: Any) -> str:
    try:
        future.result()
    except grpc.RpcError as error:
        return f"{error.code().name}: {error.details()}"
    return "OK"


def test_every_call_under_the_cap_runs_and_the_next_is_refused_at_once(
    narrow: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls past the cap are refused at once even when there are more of them than
    data calls: none waits in a queue for a thread, and health answers meanwhile."""
    from metareg.server.service.schemas import SchemaService

    release = held(monkeypatch, SchemaService, "list_schemas")
    listing = narrow.registry.ListSchemas
    futures = [listing.future(rpb.ListSchemasRequest(), timeout=30) for _ in range(6)]
    deadline = time.monotonic() + 10
    while limited_limits(narrow).calls < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    past = [outcome(listing.future(rpb.ListSchemasRequest(), timeout=30)) for _ in range(2)]
    health = health_pb2_grpc.HealthStub(narrow.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1
    refused_in = time.monotonic() - started
    release.set()
    assert [outcome(f) for f in futures] == ["OK"] * 6
    assert past == ["RESOURCE_EXHAUSTED: the server is busy (6 calls are in flight, the limit); "
                    "retry later"] * 2  # fmt: skip
    assert refused_in < 5  # not held until the six ended (20 s)


def test_data_calls_have_a_cap_of_their_own_and_schema_reads_go_on(
    narrow: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metareg.server.service.metadata import MetadataService

    release = held(monkeypatch, MetadataService, "validate")
    small = mpb.ValidateMetadataRequest(schema="cams", records=[b.metadata_record("u", {"a": "x"})])
    futures = [narrow.metadata.ValidateMetadata.future(small, timeout=30) for _ in range(2)]
    deadline = time.monotonic() + 10
    while limited_limits(narrow).data_calls < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    third = outcome(narrow.metadata.ValidateMetadata.future(small, timeout=30))
    assert narrow.registry.GetSchema(rpb.GetSchemaRequest(name="cams"), timeout=5).schema.version
    release.set()
    assert [outcome(f) for f in futures] == ["OK", "OK"]
    assert third == ("RESOURCE_EXHAUSTED: the server is busy (2 data calls are in flight, the "
                     "limit); retry later")  # fmt: skip


def test_a_refusal_at_capacity_says_when_to_retry_and_the_client_does(
    narrow: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overloaded carries a google.rpc.RetryInfo; the Python client waits and repeats
    such a call (it never ran), even a write, while a deterministic RESOURCE_EXHAUSTED
    (UpdateByFilter over too many records) carries none and is raised at once."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    from metareg.client import Client
    from metareg.server.api.errors import to_rpc_status
    from metareg.server.domain.errors import TooManyMatches
    from metareg.server.service.metadata import MetadataService

    release = held(monkeypatch, MetadataService, "validate")
    small = mpb.ValidateMetadataRequest(schema="cams", records=[b.metadata_record("u", {"a": "x"})])
    futures = [narrow.metadata.ValidateMetadata.future(small, timeout=30) for _ in range(2)]
    deadline = time.monotonic() + 10
    while limited_limits(narrow).data_calls < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(grpc.RpcError) as refused:
        narrow.metadata.ApplyBundle(mpb.ApplyBundleRequest(
            schema="cams", updates=[b.metadata_update("w", {"a": "x"})]), timeout=10)  # fmt: skip
    status = rpc_status.from_call(refused.value)
    assert status is not None
    infos = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(infos) == 1

    threading.Timer(0.5, release.set).start()
    with Client(narrow.address) as client:
        started = time.monotonic()
        assert len(client.apply("cams", {"w": {"a": "x"}})) == 1
        assert time.monotonic() - started >= 0.4  # it waited for the held calls
    assert [outcome(f) for f in futures] == ["OK", "OK"]
    assert b.stored(narrow.metadata, "cams", "w") == {"w": {"a": "x"}}
    assert not to_rpc_status(TooManyMatches(50_000)).details
