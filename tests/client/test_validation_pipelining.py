"""Validation pipelining: the first ValidateMetadata request pins the schema version and
is answered before another is sent; after it, request n+1 is built while n is in flight;
the report is the same as one request at a time would give, and no thread is left."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from metareg.client import Client

from ..conftest import RunningServer

THREAD_PREFIX = "metareg-check"


class SlowValidate(grpc.UnaryUnaryClientInterceptor):
    """Logs each ValidateMetadata sent and answered, with the version it asked for, and
    holds each answer back for `delay` seconds after the server has given it."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.events: list[tuple[str, int]] = []
        self.versions: list[int] = []
        self._lock = threading.Lock()

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        if not details.method.endswith("/ValidateMetadata"):
            return continuation(details, request)
        with self._lock:
            number = sum(1 for event, _ in self.events if event == "sent")
            self.events.append(("sent", number))
            self.versions.append(request.schema_version)
        outcome = continuation(details, request)
        outcome.result()
        time.sleep(self.delay)
        with self._lock:
            self.events.append(("answered", number))
        return outcome


@pytest.fixture
def slow(server: RunningServer, client: Client) -> Iterator[tuple[Client, SlowValidate]]:
    client.import_schema_from_dict("cams", {"n": "number"})
    interceptor = SlowValidate(delay=0.3)
    with Client(server.address, timeout=60, interceptors=[interceptor]) as slow_client:
        yield slow_client, interceptor


def check_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def test_requests_after_the_first_are_in_flight_while_the_next_is_built(
    slow: tuple[Client, SlowValidate], client: Client
) -> None:
    checker, calls = slow
    seen: list[list[tuple[str, int]]] = []
    answers: list[tuple[list[int], list[int]]] = []
    validation = checker._validation(
        "cams",
        coerce_strings=False,
        flatten_nested=False,
        on_answer=lambda done, bad: answers.append((list(done), [r.index for r in bad])),
    )
    for i in range(3500):
        if i == 1000:  # the first request went, and was answered, at record 999
            seen.append(list(calls.events))
            # A key added now is not in the version the first answer pinned.
            client.schema("cams").add_scalar("late", "varchar")
            client.schema("cams").save()
        if i in (2500, 3400):  # queueing request 3, then request 4
            time.sleep(0.05)  # let the background thread reach the server
            seen.append(list(calls.events))
        bad = i % 700 == 0
        validation.add(f"u{i}", {"late": "x"} if i == 2100 else {"n": "no" if bad else i})
    report = validation.report()
    assert seen == [
        [("sent", 0), ("answered", 0)],
        [("sent", 0), ("answered", 0), ("sent", 1)],
        [("sent", 0), ("answered", 0), ("sent", 1), ("answered", 1), ("sent", 2)],
    ]
    assert calls.versions == [0, 1, 1, 1]  # the version the first answer named
    assert report.schema_version == 1
    invalid = sorted(index for _, bad in answers for index in bad)
    assert invalid == [0, 700, 1400, 2100, 2800]  # 2100: "late" is unknown in version 1
    assert sorted(index for done, _ in answers for index in done) == list(range(3500))
    assert report.valid_count == 3500 - 5
    assert check_threads() == []


def test_without_a_callback_the_report_lists_every_invalid_record_in_order(
    slow: tuple[Client, SlowValidate],
) -> None:
    checker, calls = slow
    records = {f"u{i}": {"n": "no" if i % 999 == 5 else i} for i in range(2600)}
    report = checker.validate("cams", records)
    assert [r.index for r in report.invalid_records] == [5, 1004, 2003]
    assert [r.data_unit_id for r in report.invalid_records] == ["u5", "u1004", "u2003"]
    assert report.invalid_records[1].violations[0].field == 'records[1004].metadata["n"]'
    assert report.valid_count == 2597
    assert [event for event, _ in calls.events].count("sent") == 3
    assert check_threads() == []


@pytest.fixture
def stuck(server: RunningServer, client: Client) -> Iterator[tuple[Client, SlowValidate]]:
    """Every answer held back for 3 s: a server that is slow to answer."""
    client.import_schema_from_dict("cams", {"n": "number"})
    interceptor = SlowValidate(delay=3.0)
    with Client(server.address, timeout=60, interceptors=[interceptor]) as slow_client:
        yield slow_client, interceptor


def test_ctrl_c_while_waiting_stops_at_once_and_leaves_no_thread_to_wait_for(
    stuck: tuple[Client, SlowValidate],
) -> None:
    checker, calls = stuck
    validation = checker._validation("cams", version=1, coerce_strings=False,
                                     flatten_nested=False)  # fmt: skip
    for i in range(1500):  # request 1 goes (in flight) at record 999
        validation.add(f"u{i}", {"n": i})
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        validation.report()  # waits for request 1, then would send request 2
    waited = time.monotonic() - started
    timer.join()
    assert waited < 2.0  # not the 3 s the answer takes, nor its retries
    assert calls.events == [("sent", 0)]
    # The request still in flight runs on a daemon thread: nothing joins it at exit.
    assert all(thread.daemon for thread in check_threads())


def test_an_error_from_the_records_leaves_only_an_abandoned_daemon_thread(
    stuck: tuple[Client, SlowValidate],
) -> None:
    checker, calls = stuck

    def records() -> Iterator[tuple[str, dict[str, object]]]:
        for i in range(2100):
            yield f"u{i}", {"n": i}
        raise OSError("the source broke")

    started = time.monotonic()
    with pytest.raises(OSError, match="the source broke"):
        checker.validate("cams", records())
    # The first request (answered alone, 3 s) pinned the version; the second was in
    # flight when the source broke, and the error was not held up by it.
    assert time.monotonic() - started < 5.5
    assert [event for event, _ in calls.events].count("sent") == 2
    assert all(thread.daemon for thread in check_threads())
