"""Bundle: requests of 1000, atomic chunks, partial mode, size splits and safe retries."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from metareg.client import BundleError, Client, Outcome
from metareg.v1 import metadata_pb2 as mpb

from ..conftest import RunningServer
from .conftest import CallRecorder, sent_updates


@pytest.fixture
def cams(client: Client) -> Client:
    client.import_schema_from_dict(
        "cams", {"a": "varchar", "n": "number", "clip": {"type": "embedding", "size": 512}}
    )
    return client


def test_2500_updates_make_exactly_3_requests(cams: Client, recorder: CallRecorder) -> None:
    with cams.bundle("cams") as bundle:
        for i in range(2500):
            bundle.update(f"u{i}", {"n": i})
        assert bundle.pending == 500  # two requests sent, the rest at exit
    requests = recorder.requests("ApplyBundle")
    assert [len(sent_updates(r)) for r in requests] == [1000, 1000, 500]
    assert len({r.idempotency_key for r in requests}) == 3
    assert [(c.first, c.size) for c in bundle.chunks] == [(0, 1000), (1000, 1000), (2000, 500)]
    assert [r.index for r in bundle.results] == list(range(2500))
    assert {r.outcome for r in bundle.results} == {Outcome.APPLIED}
    stored = cams.get_metadata("cams", (f"u{i}" for i in range(2500)))
    assert len(stored) == 2500
    assert stored["u2499"] == {"n": 2499.0}


def test_an_invalid_update_in_the_second_chunk_rejects_only_that_chunk(
    cams: Client, recorder: CallRecorder
) -> None:
    """A bundle of more than 1000 updates is several transactions: the first stays applied."""
    bundle = cams.bundle("cams")

    def send_all() -> None:
        with bundle:
            for i in range(2500):
                bundle.update(f"u{i}", {"n": "bad" if i == 1500 else i})

    with pytest.raises(BundleError) as caught:
        send_all()
    error = caught.value
    assert error.failed_chunk.index == 1
    assert (error.failed_chunk.first, error.failed_chunk.last) == (1000, 1999)
    assert error.cause.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "request 2 of the bundle (updates 1000..1999)" in str(error)
    assert "500 queued update(s) were not sent" in str(error)
    # Request 2 was in flight while updates 2000.. were queued; its failure surfaced
    # when the bundle waited for it, at exit, and those updates were never sent.
    results = bundle.results
    assert results == error.results
    assert len(results) == 2500
    assert {r.outcome for r in results[2000:]} == {Outcome.NOT_SENT}
    assert {r.outcome for r in results[:1000]} == {Outcome.APPLIED}
    assert {r.chunk for r in results[:1000]} == {0}
    bad = results[1500]
    assert (bad.data_unit_id, bad.outcome, bad.chunk) == ("u1500", Outcome.REJECTED, 1)
    assert [(v.index, v.key, v.rule) for v in bad.violations] == [(1500, "n", "type")]
    assert bad.violations[0].field == 'updates[1500].metadata["n"]'
    others = [r.outcome for r in results[1000:2000] if r.index != 1500]
    assert set(others) == {Outcome.NOT_APPLIED}
    assert len(recorder.requests("ApplyBundle")) == 2
    stored = cams.get_metadata("cams", [f"u{i}" for i in range(2500)])
    assert sorted(stored, key=lambda d: int(d[1:])) == [f"u{i}" for i in range(1000)]
    with pytest.raises(RuntimeError, match="closed"):
        bundle.update("late", {"n": 1})


def test_partial_bundles_commit_the_valid_updates(cams: Client) -> None:
    with cams.bundle("cams", partial=True) as bundle:
        bundle.update("u1", {"n": 1})
        bundle.update("u2", {"n": "x", "a": 5})
        bundle.update("u1", {"a": "kept"})
    outcomes = [r.outcome for r in bundle.results]
    assert outcomes == [Outcome.APPLIED, Outcome.REJECTED, Outcome.APPLIED]
    assert {v.key for v in bundle.results[1].violations} == {"n", "a"}
    assert bundle.rejected_count == 1
    assert cams.get_metadata("cams", ["u1", "u2"]) == {"u1": {"a": "kept", "n": 1.0}}


def test_nothing_is_sent_when_the_block_raises(cams: Client, recorder: CallRecorder) -> None:
    bundle = cams.bundle("cams")

    def fail_midway() -> None:
        with bundle:
            bundle.update("u1", {"n": 1})
            raise KeyError("stop")

    with pytest.raises(KeyError):
        fail_midway()
    assert recorder.methods("ApplyBundle") == []
    assert [(r.data_unit_id, r.outcome) for r in bundle.results] == [("u1", Outcome.NOT_SENT)]
    assert cams.get_metadata("cams", ["u1"]) == {}


def test_modes_and_nulls(cams: Client) -> None:
    cams.apply("cams", {"u": {"a": "x", "n": 1}})
    cams.apply("cams", {"u": {"n": None}})
    assert cams.get_metadata("cams", ["u"]) == {"u": {"a": "x"}}
    cams.apply("cams", {"u": {"a": "other", "n": 2}}, mode="keep_existing")
    assert cams.get_metadata("cams", ["u"]) == {"u": {"a": "x", "n": 2.0}}
    cams.apply("cams", [("u", {"n": 3})], mode="replace")
    assert cams.get_metadata("cams", ["u"]) == {"u": {"n": 3.0}}
    with pytest.raises(ValueError, match="unknown mode"):
        cams.apply("cams", {"u": {"n": 3}}, mode="upsert")


def test_large_bundles_are_split_by_size(cams: Client, recorder: CallRecorder) -> None:
    limit = 100_000
    vector = array("f", [0.25] * 512)
    with cams.bundle("cams", max_request_bytes=limit) as bundle:
        for i in range(150):
            bundle.update(f"v{i}", {"clip": vector})
    sizes = [r.ByteSize() for r in recorder.requests("ApplyBundle")]
    assert len(sizes) > 1
    assert max(sizes) <= limit
    assert sum(len(sent_updates(r)) for r in recorder.requests("ApplyBundle")) == 150
    assert bundle.applied_count == 150
    assert cams.get_metadata("cams", ["v149"])["v149"]["clip"] == [0.25] * 512


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_bundle_of_1000_updates_with_4096_d_embeddings_fits(server: RunningServer) -> None:
    """About 16 MiB in one request: far above gRPC's default 4 MiB message limit."""
    with Client(server.address, timeout=120) as client:
        client.import_schema_from_dict("big", {"clip": {"type": "embedding", "size": 4096}})
        vector = array("f", range(4096))
        with client.bundle("big") as bundle:
            for i in range(1000):
                bundle.update(f"u{i}", {"clip": vector})
        assert len(bundle.chunks) == 1
        assert bundle.applied_count == 1000
        assert client.get_metadata("big", ["u999"])["u999"]["clip"] == vector.tolist()


class LostResponse(grpc.RpcError):
    """What a client sees when the connection drops after the server applied a request."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection reset (simulated)"


class LoseFirstResponse(grpc.UnaryUnaryClientInterceptor):
    """Lets the first ApplyBundle reach the server, then reports UNAVAILABLE."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        outcome = continuation(details, request)
        if details.method.endswith("/ApplyBundle"):
            self.keys.append(request.idempotency_key)
            if len(self.keys) == 1:
                outcome.result()  # the server has applied it
                raise LostResponse()
        return outcome


def test_a_retried_bundle_request_is_never_applied_twice(
    server: RunningServer, cams: Client
) -> None:
    flaky = LoseFirstResponse()
    with Client(server.address, interceptors=[flaky]) as client:
        with client.bundle("cams") as bundle:
            bundle.update("u1", {"n": 1})
            bundle.update("u1", {"a": "second"})
        assert len(flaky.keys) == 2
        assert flaky.keys[0] == flaky.keys[1]  # the retry carries the same key
        assert bundle.chunks[0].replayed
        assert [r.revision for r in bundle.results] == [1, 2]
        stored = server.metadata.GetMetadata(
            mpb.GetMetadataRequest(schema="cams", data_unit_ids=["u1"])
        )
        assert stored.records[0].revision == 2  # not 4: applied once


def test_unsupported_values_fail_before_anything_is_sent(
    cams: Client, recorder: CallRecorder
) -> None:
    with cams.bundle("cams") as bundle:
        bundle.update("u1", {"n": 1})
        with pytest.raises(TypeError, match='key "n": a list with booleans'):
            bundle.update("u2", {"n": [True, False]})
        with pytest.raises(TypeError, match="nested object"):
            bundle.update("u3", {"capture": {"temp": 1}})
        assert bundle.pending == 1
    assert [r.data_unit_id for r in bundle.results] == ["u1"]


def test_progress_accepts_a_callable_or_a_tqdm_like_bar(cams: Client) -> None:
    seen: list[tuple[int, int, int]] = []
    with cams.bundle("cams", progress=lambda c: seen.append((c.index, c.size, c.applied))) as b:
        for i in range(1200):
            b.update(f"u{i}", {"n": i})
    assert seen == [(0, 1000, 1000), (1, 200, 200)]

    class Bar:
        total = 0

        def update(self, n: int = 1) -> None:
            self.total += n

    bar = Bar()
    with cams.bundle("cams", progress=bar, keep_results=False) as quiet:
        for i in range(1200):
            quiet.update(f"u{i}", {"n": i + 1})
    assert bar.total == 1200
    assert quiet.results == []  # keep_results=False keeps memory flat
    assert quiet.applied_count == 1200


def test_an_update_split_off_a_failed_request_is_reported_not_sent(cams: Client) -> None:
    vector = [0.5] * 512  # 2732 characters of base64 in an update of ~2780 bytes
    bundle = cams.bundle("cams", max_request_bytes=6000)  # two such updates per request

    def send() -> None:
        with bundle:
            bundle.update("u0", {"clip": vector})
            bundle.update("u1", {"clip": vector, "n": "bad"})
            bundle.update("u2", {"clip": vector})  # sends u0 and u1, which fail
            bundle.update("u3", {"clip": vector})  # queued with u2 while they are in flight

    with pytest.raises(BundleError) as caught:
        send()
    assert [(r.data_unit_id, r.outcome) for r in caught.value.results] == [
        ("u0", Outcome.NOT_APPLIED),
        ("u1", Outcome.REJECTED),
        ("u2", Outcome.NOT_SENT),
        ("u3", Outcome.NOT_SENT),
    ]
    assert caught.value.results[2].index == 2
