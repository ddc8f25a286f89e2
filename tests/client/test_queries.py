"""Client.query, count and update_by_filter against a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from metareg.client import (
    Client,
    FilterUpdate,
    InvalidArgumentError,
    Outcome,
    QueryErrorPosition,
    ResourceExhaustedError,
    RetryPolicy,
    StoredRecord,
    UnavailableError,
)

from ..conftest import RunningServer
from .conftest import CallRecorder

RECORDS = 60


def q_of(i: int) -> float | None:
    """Every fifth record has no q: those come last when ordering by q."""
    return float(i % 13) if i % 5 else None


def frame(i: int) -> dict[str, object]:
    metadata: dict[str, object] = {"cam": f"c{i % 4}", "clip": [float(i), 0.5]}
    if q_of(i) is not None:
        metadata["q"] = q_of(i)
    return metadata


@pytest.fixture
def frames(client: Client) -> Client:
    client.import_schema_from_dict(
        "f",
        {"cam": {"type": "varchar", "indexed": True}, "q": {"type": "number", "indexed": True},
         "note": "text", "capture.temp": "number", "clip": {"type": "embedding", "size": 2}},
    )  # fmt: skip
    client.apply("f", {f"u{i:03d}": frame(i) for i in range(RECORDS)})
    return client


def expected_order(keep: Callable[[float], bool], descending: bool) -> list[str]:
    """Records with q, by q then data_unit_id; "desc" reverses both (the server's order)."""
    found = [(q, f"u{i:03d}") for i in range(RECORDS) if (q := q_of(i)) is not None and keep(q)]
    return [duid for _, duid in sorted(found, reverse=descending)]


def test_query_pages_lazily_in_the_requested_order(frames: Client, recorder: CallRecorder) -> None:
    results = frames.query("f", "q >= 5", order_by="q desc", page_size=7)
    assert len(recorder.requests("QueryMetadata")) == 1  # the first page, at once
    first_seven = [next(results) for _ in range(7)]
    assert len(recorder.requests("QueryMetadata")) == 1
    rest = list(results)
    ids = [r.data_unit_id for r in first_seven + rest]
    assert ids == expected_order(lambda q: q >= 5, descending=True)
    requests = recorder.requests("QueryMetadata")
    assert len(requests) == -(-len(ids) // 7)  # ceil: every page was read, none twice
    assert [r.page_size for r in requests] == [7] * len(requests)
    assert requests[0].page_token == ""
    assert all(r.page_token for r in requests[1:])
    assert results.pages_read == len(requests)
    assert results.schema_version == 1
    assert list(results) == []  # an iterator: exhausted


def test_query_without_filter_orders_by_id_and_puts_missing_keys_last(frames: Client) -> None:
    everything = [r.data_unit_id for r in frames.query("f", page_size=1000)]
    assert everything == [f"u{i:03d}" for i in range(RECORDS)]
    by_q = [r.data_unit_id for r in frames.query("f", order_by="q", page_size=9)]
    lacking = [f"u{i:03d}" for i in range(0, RECORDS, 5)]
    assert by_q == expected_order(lambda q: True, descending=False) + lacking


def test_limit_stops_early_and_asks_for_no_more(frames: Client, recorder: CallRecorder) -> None:
    assert [r.data_unit_id for r in frames.query("f", limit=3)] == ["u000", "u001", "u002"]
    assert [r.page_size for r in recorder.requests("QueryMetadata")] == [3]
    recorder.calls.clear()
    pages = list(frames.query("f", 'cam = "c1"', page_size=4, limit=10).pages())
    assert [len(p) for p in pages] == [4, 4, 2]
    assert [r.page_size for r in recorder.requests("QueryMetadata")] == [4, 4, 2]
    with pytest.raises(ValueError, match=r"page_size must be 1\.\.1000"):
        frames.query("f", page_size=1001)
    with pytest.raises(ValueError, match="limit must be a positive"):
        frames.query("f", limit=0)


def test_records_have_the_stored_form_and_apply_takes_them_back(frames: Client) -> None:
    [record] = frames.query("f", "q = 1", limit=1)
    assert isinstance(record, StoredRecord)
    assert record.data_unit_id == "u001"
    assert record.metadata == frames.get_metadata("f", ["u001"])["u001"]
    assert record.metadata["clip"] == [1.0, 0.5]
    assert (record.revision, record.schema_version) == (1, 1)
    assert record.updated_at is not None
    assert record.to_dict() == {"data_unit_id": "u001", "metadata": record.metadata}
    results = frames.apply("f", frames.query("f", "q < 3"))
    assert results
    assert {r.outcome for r in results} == {Outcome.UNCHANGED}


def test_a_rejected_filter_raises_at_once_with_the_column(
    frames: Client, recorder: CallRecorder
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        frames.query("f", 'cam = "c1" AND q > "ten"')
    [violation] = caught.value.violations
    assert (violation.field, violation.reason) == ("filter", "query")
    assert violation.description.startswith("filter error at column 20: ")
    position = caught.value.query_error
    assert position == QueryErrorPosition(
        "filter", 20, 'key "q" has type number; compare it with a number, not a string'
    )
    assert position.pointer('cam = "c1" AND q > "ten"') == (
        'cam = "c1" AND q > "ten"',
        " " * 19 + "^",
    )
    assert len(recorder.requests("QueryMetadata")) == 1  # not retried
    with pytest.raises(InvalidArgumentError) as caught:
        frames.query("f", order_by="clip")
    assert caught.value.query_error is not None
    assert caught.value.query_error.field == "order_by"
    with pytest.raises(InvalidArgumentError) as caught:
        frames.count("f", "missing EXISTS")
    assert caught.value.query_error == QueryErrorPosition(
        "filter", 1, 'schema has no key "missing"'
    )


def test_pointer_finds_the_line_and_keeps_tabs() -> None:
    position = QueryErrorPosition("filter", 16, "problem")  # the "3" of the second line
    assert position.pointer("q = 1 AND\n\tw = 3 OR x") == ("\tw = 3 OR x", "\t    ^")
    assert QueryErrorPosition("filter", 5, "end").pointer("q >=") == ("q >=", "    ^")


def test_count(frames: Client) -> None:
    assert frames.count("f") == RECORDS
    assert frames.count("f", 'cam = "c1"') == RECORDS // 4
    assert frames.count("f", "NOT q EXISTS") == RECORDS // 5
    assert frames.count("f", "q >= 5") == len(expected_order(lambda q: q >= 5, False))


def test_update_by_filter_validate_only_then_for_real(
    frames: Client, recorder: CallRecorder
) -> None:
    matched = frames.count("f", 'cam = "c2"')
    preview = frames.update_by_filter("f", 'cam = "c2"', {"note": "checked"}, validate_only=True)
    assert preview == FilterUpdate(matched, 0, 1, validate_only=True)
    assert frames.count("f", "note EXISTS") == 0  # nothing was written
    done = frames.update_by_filter("f", 'cam = "c2"', {"note": "checked", "q": None})
    assert (done.matched_count, done.updated_count, done.validate_only) == (matched, matched, False)
    assert frames.count("f", 'note = "checked" AND NOT q EXISTS') == matched
    again = frames.update_by_filter("f", 'cam = "c2"', {"note": "checked"})
    assert (again.matched_count, again.updated_count) == (matched, 0)  # already so
    request = recorder.requests("UpdateByFilter")[0]
    assert (request.validate_only, request.filter) == (True, 'cam = "c2"')


def test_update_by_filter_modes_and_conveniences(frames: Client) -> None:
    kept = frames.update_by_filter("f", 'cam = "c3"', {"q": 99}, mode="keep_existing")
    assert kept.matched_count == frames.count("f", 'cam = "c3"')
    lacking_q = sum(1 for i in range(RECORDS) if i % 4 == 3 and q_of(i) is None)
    assert frames.count("f", "q = 99") == lacking_q  # only they were given q
    frames.update_by_filter(
        "f", 'cam = "c0"', {"capture": {"temp": "21.5"}}, coerce_strings=True, flatten_nested=True
    )
    assert frames.count("f", "`capture.temp` = 21.5") == frames.count("f", 'cam = "c0"')


def test_an_invalid_patch_or_filter_writes_nothing(frames: Client) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        frames.update_by_filter("f", 'cam = "c1"', {"q": "high"})
    assert [v.field for v in caught.value.violations] == ['metadata["q"]']
    with pytest.raises(InvalidArgumentError, match="needs a filter"):
        frames.update_by_filter("f", "", {"note": "all"})
    with pytest.raises(InvalidArgumentError) as caught:
        frames.update_by_filter("f", "q >", {"note": "x"})
    assert caught.value.query_error is not None
    assert frames.count("f", "note EXISTS") == 0


def test_too_many_matches_is_resource_exhausted(
    frames: Client, recorder: CallRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metareg.server.service import query as query_service

    monkeypatch.setattr(query_service, "MAX_UPDATE_BY_FILTER", 10)
    with pytest.raises(ResourceExhaustedError, match="more than 10 records") as caught:
        frames.update_by_filter("f", "q >= 0", {"note": "many"})
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(recorder.requests("UpdateByFilter")) == 1
    assert frames.count("f", "note EXISTS") == 0
    small = frames.update_by_filter("f", "q = 1", {"note": "few"})
    assert small.updated_count == small.matched_count > 0


class LostResponse(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection reset (simulated)"


class LoseSecondResponse(grpc.UnaryUnaryClientInterceptor):
    """Lets the second call of a method reach the server, then reports UNAVAILABLE."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.requests: list[Any] = []

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        outcome = continuation(details, request)
        if details.method.endswith(f"/{self.method}"):
            self.requests.append(request)
            if len(self.requests) == 2:
                outcome.result()  # the server has answered
                raise LostResponse()
        return outcome


def test_pages_are_retried_and_update_by_filter_never_is(
    server: RunningServer, frames: Client
) -> None:
    retry = RetryPolicy(initial_backoff=0.01)
    flaky = LoseSecondResponse("QueryMetadata")
    with Client(server.address, retry=retry, interceptors=[flaky]) as client:
        ids = [r.data_unit_id for r in client.query("f", page_size=25)]
    assert ids == [f"u{i:03d}" for i in range(RECORDS)]  # nothing skipped or repeated
    assert len(flaky.requests) == 4  # 3 pages, the second one twice
    assert flaky.requests[1].page_token == flaky.requests[2].page_token
    flaky = LoseSecondResponse("UpdateByFilter")
    with Client(server.address, retry=retry, interceptors=[flaky]) as client:
        client.update_by_filter("f", "q = 1", {"note": "one"})
        with pytest.raises(UnavailableError):
            client.update_by_filter("f", "q = 2", {"note": "two"})
    assert len(flaky.requests) == 2  # not retried
