"""Every domain error maps to one status; rich details respect their byte budget."""

from __future__ import annotations

import urllib.parse

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from metareg.server.api.errors import (
    DEFAULT_DETAIL_BYTES,
    MAX_MESSAGE_BYTES,
    detail_budget,
    to_rpc_status,
)
from metareg.server.domain import errors
from metareg.server.domain.errors import FieldViolation, MetaregError


def all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *all_subclasses(sub)]
    return found


@pytest.mark.parametrize("cls", all_subclasses(MetaregError), ids=lambda c: c.__name__)
def test_every_domain_error_has_a_status_code(cls: type[MetaregError]) -> None:
    code = cls.code
    assert grpc.StatusCode[code.name] is not grpc.StatusCode.OK
    assert code.name in {
        "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "FAILED_PRECONDITION", "ABORTED",
        "RESOURCE_EXHAUSTED", "UNAVAILABLE", "CANCELLED", "UNAUTHENTICATED", "PERMISSION_DENIED",
    }  # fmt: skip


def test_status_codes_follow_the_hierarchy() -> None:
    assert errors.VersionConflict("s", 1, 2).code.name == "ABORTED"
    assert errors.SchemaNotFound("s").code.name == "NOT_FOUND"
    assert errors.IdempotencyKeyReused("k").code.name == "FAILED_PRECONDITION"
    assert errors.InvalidSchemaChange("x").code.name == "INVALID_ARGUMENT"
    assert errors.Unauthenticated("no key").code.name == "UNAUTHENTICATED"
    assert errors.PermissionDenied("reader").code.name == "PERMISSION_DENIED"


def test_bad_request_details_are_cut_to_the_budget() -> None:
    violations = [FieldViolation(f"changes[{i}]", "x" * 100, "schema_rule") for i in range(500)]
    status = to_rpc_status(errors.InvalidSchemaChange("many", violations))
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert status.ByteSize() < DEFAULT_DETAIL_BYTES + 500
    request = error_details_pb2.BadRequest()
    status.details[0].Unpack(request)
    shown = request.field_violations
    assert 10 < len(shown) < 500
    assert shown[-1].reason == "truncated"
    assert f"{500 - (len(shown) - 1)} more violation(s)" in shown[-1].description
    roomy = to_rpc_status(errors.InvalidSchemaChange("many", violations), budget=10**6)
    roomy.details[0].Unpack(request)
    assert len(request.field_violations) == 500


def test_detail_budget_header_is_bounded() -> None:
    assert detail_budget([]) == DEFAULT_DETAIL_BYTES
    assert detail_budget([("metareg-error-detail-bytes", "100000")]) == 100000
    assert detail_budget([("metareg-error-detail-bytes", "999999999999")]) == 4 * 1024 * 1024
    assert detail_budget([("metareg-error-detail-bytes", "lots")]) == DEFAULT_DETAIL_BYTES


def test_statuses_are_valid_utf8_and_fit_a_default_client() -> None:
    """Lone surrogates are replaced, and a huge non-ASCII message is cut by its encoded size."""
    violations = [FieldViolation("records[0]", "bad \ud800 value", "rule")]
    status = to_rpc_status(errors.InvalidSchemaChange("oops \udc00 " + "é" * 5000, violations))
    status.SerializeToString()  # raises on text that is not valid UTF-8
    assert status.message.startswith("oops ? ")
    encoded = urllib.parse.quote(status.message.encode(), safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
    assert len(encoded) <= MAX_MESSAGE_BYTES
    request = error_details_pb2.BadRequest()
    status.details[0].Unpack(request)
    assert request.field_violations[0].description == "bad ? value"
