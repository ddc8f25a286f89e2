"""Bundle pipelining: request n+1 is built while n is in flight, sent only once n has
answered; failures surface at the next wait with the same results; no thread is left."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from metareg.client import BundleError, Client, Outcome, RetryPolicy, UnavailableError

from ..conftest import RunningServer

THREAD_PREFIX = "metareg-bundle"


def bundle_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


class SlowApply(grpc.UnaryUnaryClientInterceptor):
    """Records when each ApplyBundle is sent and answered (and on which thread), and
    holds each answer back for `delay` seconds after the server has given it."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.events: list[tuple[str, int]] = []
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def log(self, event: str, number: int) -> None:
        with self._lock:
            self.events.append((event, number))

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        if not details.method.endswith("/ApplyBundle"):
            return continuation(details, request)
        number = sum(1 for event, _ in self.events if event == "sent")
        self.threads.append(threading.current_thread().name)
        self.log("sent", number)
        outcome = continuation(details, request)
        outcome.result()  # the server has answered
        time.sleep(self.delay)
        self.log("answered", number)
        return outcome


@pytest.fixture
def cams(client: Client) -> Client:
    client.import_schema_from_dict("cams", {"n": "number", "s": "varchar"})
    return client


@pytest.fixture
def slow(server: RunningServer, cams: Client) -> Iterator[tuple[Client, SlowApply]]:
    interceptor = SlowApply(delay=0.3)
    with Client(server.address, timeout=60, interceptors=[interceptor]) as client:
        yield client, interceptor


def test_the_next_request_is_built_while_one_is_in_flight(
    slow: tuple[Client, SlowApply],
) -> None:
    client, calls = slow
    seen_while_building: list[list[tuple[str, int]]] = []
    progress_threads: list[str] = []
    bundle = client.bundle(
        "cams", progress=lambda c: progress_threads.append(threading.current_thread().name)
    )
    with bundle:
        for i in range(2500):
            bundle.update(f"u{i}", {"n": i})
            if i in (1500, 2400):  # queueing request 2, then request 3
                time.sleep(0.05)  # let the background thread reach the server
                seen_while_building.append(list(calls.events))
    # While request 2 was being queued, request 1 was sent and not yet answered; while
    # request 3 was, request 2 was in flight, sent only after request 1 had answered.
    assert seen_while_building == [
        [("sent", 0)],
        [("sent", 0), ("answered", 0), ("sent", 1)],
    ]
    assert calls.events == [
        ("sent", 0), ("answered", 0), ("sent", 1), ("answered", 1), ("sent", 2), ("answered", 2)
    ]  # fmt: skip
    # Pipelined requests go from the background thread; the last one, which close()
    # waits for anyway, from the caller's. Progress always runs in the caller's thread.
    assert [name.startswith(THREAD_PREFIX) for name in calls.threads] == [True, True, False]
    assert progress_threads == [threading.current_thread().name] * 3
    assert [r.index for r in bundle.results] == list(range(2500))
    assert bundle.applied_count == 2500
    assert [(c.index, c.first, c.size) for c in bundle.chunks] == [
        (0, 0, 1000), (1, 1000, 1000), (2, 2000, 500)
    ]  # fmt: skip
    assert bundle_threads() == []


def test_flush_waits_for_everything_in_flight(slow: tuple[Client, SlowApply]) -> None:
    client, calls = slow
    with client.bundle("cams") as bundle:
        for i in range(1000):
            bundle.update(f"u{i}", {"n": i})
        assert calls.events == [("sent", 0)]  # in flight, not answered
        assert bundle.pending == 0
        bundle.flush()
        assert calls.events == [("sent", 0), ("answered", 0)]
        assert bundle.applied_count == 1000
        bundle.update("last", {"n": 1})
    assert bundle.applied_count == 1001
    assert bundle_threads() == []


def test_a_rejected_first_request_of_three_stops_the_bundle_as_before(
    server: RunningServer, cams: Client
) -> None:
    bundle = cams.bundle("cams")
    queued: list[int] = []

    def send_all() -> None:
        with bundle:
            for i in range(3000):
                bundle.update(f"u{i}", {"n": "bad" if i == 500 else i})
                queued.append(i)

    with pytest.raises(BundleError) as caught:
        send_all()
    error = caught.value
    # Request 1 was in flight while request 2 was queued; its failure surfaced when
    # request 2 was to be sent (at its last update), and request 2 was never sent.
    assert queued[-1] == 1998
    assert error.failed_chunk.index == 0
    assert error.cause.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "request 1 of the bundle (updates 0..999)" in str(error)
    assert "1000 queued update(s) were not sent" in str(error)
    results = error.results
    assert results == bundle.results
    assert [r.index for r in results] == list(range(2000))
    bad = results[500]
    assert (bad.data_unit_id, bad.outcome, bad.chunk) == ("u500", Outcome.REJECTED, 0)
    assert bad.violations[0].field == 'updates[500].metadata["n"]'
    assert {r.outcome for r in results[:1000] if r.index != 500} == {Outcome.NOT_APPLIED}
    assert {r.outcome for r in results[1000:]} == {Outcome.NOT_SENT}
    assert {r.chunk for r in results[1000:]} == {1}
    assert [c.index for c in bundle.chunks] == [0]
    assert cams.get_metadata("cams", [f"u{i}" for i in range(3000)]) == {}
    assert bundle_threads() == []
    with pytest.raises(RuntimeError, match="closed"):
        bundle.update("late", {"n": 1})


def test_a_failed_request_in_flight_surfaces_at_close(cams: Client) -> None:
    bundle = cams.bundle("cams", keep_results=False)

    def send_all() -> None:
        with bundle:
            for i in range(1200):
                bundle.update(f"u{i}", {"n": "bad" if i == 999 else i})

    with pytest.raises(BundleError) as caught:
        send_all()
    assert [r.outcome for r in caught.value.results[998:1001]] == [
        Outcome.NOT_APPLIED, Outcome.REJECTED, Outcome.NOT_SENT
    ]  # fmt: skip
    assert len(caught.value.results) == 1200
    assert bundle.counts[Outcome.NOT_SENT] == 200
    assert bundle_threads() == []


def test_when_the_block_raises_the_request_in_flight_is_recorded_and_the_rest_not_sent(
    slow: tuple[Client, SlowApply], cams: Client
) -> None:
    client, calls = slow
    bundle = client.bundle("cams")

    def fail_midway() -> None:
        with bundle:
            for i in range(1500):
                bundle.update(f"u{i}", {"n": i})
            raise KeyError("stop")

    with pytest.raises(KeyError):
        fail_midway()
    assert calls.events == [("sent", 0), ("answered", 0)]
    outcomes = [r.outcome for r in bundle.results]
    assert outcomes == [Outcome.APPLIED] * 1000 + [Outcome.NOT_SENT] * 500
    assert [c.index for c in bundle.chunks] == [0]
    stored = cams.get_metadata("cams", [f"u{i}" for i in range(1500)])
    assert len(stored) == 1000
    assert "u999" in stored
    assert bundle_threads() == []


def test_a_dropped_bundle_warns_and_leaves_no_thread_behind(
    slow: tuple[Client, SlowApply],
) -> None:
    client, calls = slow
    held = [client.bundle("cams")]
    for i in range(1001):
        held[0].update(f"u{i}", {"n": i})
    assert len(bundle_threads()) == 1
    with pytest.warns(ResourceWarning, match="1 unsent update.* and a request whose result"):
        held.clear()  # the last reference: the bundle is collected at once
    deadline = time.monotonic() + 30
    while bundle_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bundle_threads() == []
    assert calls.events == [("sent", 0), ("answered", 0)]


def test_small_bundles_start_no_thread(cams: Client) -> None:
    with cams.bundle("cams") as bundle:
        for i in range(999):
            bundle.update(f"u{i}", {"n": i})
        assert bundle_threads() == []
    assert bundle_threads() == []
    assert bundle.applied_count == 999


class Unreachable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection refused (simulated)"


class FailSecondApply(grpc.UnaryUnaryClientInterceptor):
    """Every attempt of the second ApplyBundle fails with UNAVAILABLE, unsent."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        if details.method.endswith("/ApplyBundle"):
            if request.idempotency_key not in self.keys:
                self.keys.append(request.idempotency_key)
            if self.keys.index(request.idempotency_key) == 1:
                raise Unreachable()
        return continuation(details, request)


def test_an_unanswered_request_in_flight_is_unknown_and_retried_with_its_key(
    server: RunningServer, cams: Client
) -> None:
    flaky = FailSecondApply()
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
    with Client(server.address, interceptors=[flaky], retry=retry) as client:
        bundle = client.bundle("cams")

        def send_all() -> None:
            with bundle:
                for i in range(3500):
                    bundle.update(f"u{i}", {"n": i})

        with pytest.raises(BundleError) as caught:
            send_all()
    error = caught.value
    assert isinstance(error.cause, UnavailableError)
    assert error.failed_chunk.index == 1
    assert "their outcome is unknown" in str(error)
    outcomes = [r.outcome for r in error.results]
    assert (
        outcomes == [Outcome.APPLIED] * 1000 + [Outcome.UNKNOWN] * 1000 + [Outcome.NOT_SENT] * 1000
    )
    assert len(flaky.keys) == 2  # the retries of request 2 carried its one key
    assert bundle_threads() == []


class BreakingApply(grpc.UnaryUnaryClientInterceptor):
    """Makes the `broken`th ApplyBundle fail in the client, not with a gRPC status."""

    def __init__(self, broken: int) -> None:
        self.broken = broken
        self.calls = 0

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        if details.method.endswith("/ApplyBundle"):
            self.calls += 1
            if self.calls == self.broken:
                raise ValueError("Cannot invoke RPC on closed channel!")
        return continuation(details, request)


def test_a_request_that_breaks_in_the_client_leaves_every_result(
    server: RunningServer, cams: Client
) -> None:
    """A call that fails with no status (a closed channel, say) stops the bundle like a
    failed call: its updates are UNKNOWN, the ones queued after it NOT_SENT."""
    with Client(server.address, interceptors=[BreakingApply(2)]) as client:
        bundle = client.bundle("cams")

        def send_all() -> None:
            with bundle:
                for i in range(2500):
                    bundle.update(f"u{i}", {"n": i})

        with pytest.raises(BundleError) as raised:
            send_all()
    outcomes = [r.outcome for r in bundle.results]
    assert len(outcomes) == 2500
    assert set(outcomes[:1000]) == {Outcome.APPLIED}
    assert set(outcomes[1000:2000]) == {Outcome.UNKNOWN}
    assert set(outcomes[2000:]) == {Outcome.NOT_SENT}
    assert "closed channel" in str(raised.value)
    assert bundle_threads() == []
