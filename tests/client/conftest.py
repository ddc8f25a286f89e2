"""Fixtures for the client tests: a Client on the real server, and call recorders."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from metareg.client import Client

from ..conftest import RunningServer


class CallRecorder(grpc.UnaryUnaryClientInterceptor):
    """Records the method name and request of every call that the client makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def methods(self, name: str | None = None) -> list[str]:
        found = [method for method, _ in self.calls]
        return [m for m in found if m == name] if name else found

    def requests(self, name: str) -> list[Any]:
        return [request for method, request in self.calls if method == name]

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        self.calls.append((details.method.rsplit("/", 1)[-1], request))
        return continuation(details, request)


def sent_updates(request: Any) -> list[dict[str, Any]]:
    """The updates (or records) of an ApplyBundle (ValidateMetadata) request the client
    sent: it sends the JSON record form, never the typed fields."""
    assert not (request.updates if hasattr(request, "updates") else request.records)
    raw = request.updates_json if hasattr(request, "updates_json") else request.records_json
    decoded: list[dict[str, Any]] = json.loads(raw)
    return decoded


@pytest.fixture
def recorder() -> CallRecorder:
    return CallRecorder()


@pytest.fixture
def client(server: RunningServer, recorder: CallRecorder) -> Iterator[Client]:
    """A client of the real server whose calls `recorder` sees."""
    with Client(server.address, timeout=60, interceptors=[recorder]) as connected:
        yield connected
