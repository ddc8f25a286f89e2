"""Typed errors: one class per status code, rich details unpacked from real failures."""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest

import metareg.client
from metareg.client import (
    BundleError,
    CallError,
    Client,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    MetaregError,
    NotFoundError,
    UnavailableError,
    exception_class_for,
    from_grpc_error,
)

CODES = [code for code in grpc.StatusCode if code is not grpc.StatusCode.OK]


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"went {self._code.name.lower()}"


@pytest.mark.parametrize("code", CODES, ids=[c.name for c in CODES])
def test_every_status_code_has_its_own_exception_class(code: grpc.StatusCode) -> None:
    cls = exception_class_for(code)
    assert cls.grpc_status_code is code
    assert issubclass(cls, CallError)
    assert cls.__name__ in metareg.client.__all__
    assert getattr(metareg.client, cls.__name__) is cls
    error = from_grpc_error(FakeRpcError(code))
    assert type(error) is cls
    assert error.code is code
    assert str(error) == f"{code.name}: went {code.name.lower()}"
    assert error.violations == []


def test_the_mapping_is_one_to_one() -> None:
    classes = {exception_class_for(code) for code in CODES}
    assert len(classes) == len(CODES)
    assert set(CallError.__subclasses__()) == classes
    assert exception_class_for(grpc.StatusCode.ABORTED) is ConflictError
    assert issubclass(ConflictError, MetaregError)


def test_the_exception_tree_is_drawn_in_the_module_docstring() -> None:
    doc = metareg.client._errors.__doc__ or ""
    for code in CODES:
        assert re.search(rf"── {exception_class_for(code).__name__}\s+{code.name}\b", doc), code


def test_rich_details_of_a_rejected_schema_change(client: Client) -> None:
    schema = client.schema("cams")
    schema.add_scalar("ok", "text")
    schema.add_embedding("big", size=4097)
    with pytest.raises(InvalidArgumentError) as caught:
        schema.save()
    [violation] = caught.value.violations
    assert violation.field == "changes[1]"
    assert "out of range 1..4096" in violation.description
    assert isinstance(caught.value.grpc_error, grpc.RpcError)


def test_every_violation_of_a_large_rejected_bundle_arrives(client: Client) -> None:
    """The client raises its metadata limit and asks for every detail (not the first 7 KB)."""
    client.import_schema_from_dict("cams", {"n": "number", "b": "boolean"})
    updates = {f"unit-{i:04d}": {"n": "not a number", "b": "no"} for i in range(1000)}
    with pytest.raises(BundleError) as caught:
        client.apply("cams", updates)
    cause = caught.value.cause
    assert isinstance(cause, InvalidArgumentError)
    assert len(cause.violations) == 2000
    assert cause.bundle_rejection is not None
    assert len(cause.bundle_rejection.results) == 1000
    assert all(len(r.violations) == 2 for r in caught.value.results)
    assert caught.value.results[999].violations[0].field == 'updates[999].metadata["b"]'


def test_not_found_and_failed_precondition(client: Client) -> None:
    with pytest.raises(NotFoundError, match='schema "nope" does not exist'):
        client.get_metadata("nope", ["u1"])
    with pytest.raises(NotFoundError):
        client.schema("nope", version=3)
    client.import_schema_from_dict("cams", {"s": "text"})
    client.apply("cams", {"u1": {"s": "x"}})
    with pytest.raises(FailedPreconditionError) as caught:
        client.import_schema_from_dict("cams", {"s": "number"})
    impact = caught.value.impact
    assert impact is not None
    assert (impact.invalid_records, impact.sample_data_unit_ids) == (1, ("u1",))


def test_an_unreachable_server_is_unavailable_after_retries() -> None:
    attempts: list[Any] = []

    class Count(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            attempts.append(details.method)
            return continuation(details, request)

    with Client("127.0.0.1:1", timeout=5, interceptors=[Count()]) as client:
        with pytest.raises(UnavailableError):
            client.get_metadata("cams", ["u1"])
        assert len(attempts) == 4  # reads are retried
        attempts.clear()
        with pytest.raises(UnavailableError):
            client.delete_metadata("cams", ["u1"])
        assert len(attempts) == 1  # writes without an idempotency key are not
