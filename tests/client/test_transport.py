"""Every call carries a deadline and the error-detail header; user metadata is sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from metareg.client import Client, RetryPolicy

from ..conftest import RunningServer


class SeeDetails(grpc.UnaryUnaryClientInterceptor):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        self.seen.append(details)
        return continuation(details, request)


def test_deadlines_and_headers_on_every_call(server: RunningServer) -> None:
    spy = SeeDetails()
    with Client(
        server.address, timeout=7, metadata=[("x-team", "vision")], interceptors=[spy]
    ) as client:
        client.import_schema_from_dict("cams", {"n": "number"})
        client.apply("cams", {"u1": {"n": 1}})
        client.validate("cams", {"u1": {"n": 2}})
        client.get_metadata("cams", ["u1"])
        client.schema("cams").history()
    methods = [d.method.rsplit("/", 1)[-1] for d in spy.seen]
    assert set(methods) >= {
        "GetSchema", "ImportSchema", "ApplyBundle", "ValidateMetadata", "GetMetadata",
        "ListSchemaVersions",
    }  # fmt: skip
    for details in spy.seen:
        assert details.timeout == 7
        headers = dict(details.metadata)
        assert headers["x-team"] == "vision"
        assert int(headers["metareg-error-detail-bytes"]) == 4 * 1024 * 1024


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.1, max_backoff=0.3, multiplier=2)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.3)]:
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
