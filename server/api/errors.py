"""Map domain errors to gRPC statuses with google.rpc error details.

Details travel in trailing metadata, which gRPC clients cap (8 KiB by default).
Violations are therefore added until a byte budget is reached; the last entry
then says how many were left out. A client that raised its own limit may ask
for a larger budget with the `metareg-error-detail-bytes` request header.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from metareg.v1 import metadata_pb2 as mpb

from ..domain.bundle import BundlePlan, Outcome
from ..domain.errors import (
    FieldViolation,
    IncompatibleChange,
    InvalidMetadata,
    InvalidQuery,
    MetaregError,
)
from ..domain.impact import ImpactReport
from .convert import impact_to_proto, result_to_proto

DEFAULT_DETAIL_BYTES = 7000
MAX_DETAIL_BYTES = 4 * 1024 * 1024
DETAIL_BYTES_HEADER = "metareg-error-detail-bytes"
MAX_MESSAGE_CHARS = 1500
ERROR_DOMAIN = "metareg.v1"
# ErrorInfo.reason for a filter or order_by the server could not use; its metadata
# holds "field" (filter or order_by), "column" (1-based) and "problem".
QUERY_ERROR_REASON = "INVALID_QUERY"


def grpc_code(error: MetaregError) -> grpc.StatusCode:
    return grpc.StatusCode[error.code.name]


def detail_budget(invocation_metadata: Sequence[Any] | None) -> int:
    for item in invocation_metadata or ():
        if item[0] == DETAIL_BYTES_HEADER:
            try:
                return max(1000, min(int(item[1]), MAX_DETAIL_BYTES))
            except ValueError:
                break
    return DEFAULT_DETAIL_BYTES


def _bad_request(violations: Sequence[FieldViolation], budget: int) -> error_details_pb2.BadRequest:
    request = error_details_pb2.BadRequest()
    used = 0
    for index, violation in enumerate(violations):
        entry = error_details_pb2.BadRequest.FieldViolation(
            field=violation.field, description=violation.description, reason=violation.reason
        )
        size = entry.ByteSize() + 4
        if used + size > budget and index > 0:
            left = len(violations) - index
            request.field_violations.add(
                field="",
                description=f"{left} more violation(s) not shown; fix the ones above, or use "
                "ValidateMetadata to list every violation",
                reason="truncated",
            )
            break
        request.field_violations.append(entry)
        used += size
    return request


def _rejection(plan: BundlePlan, budget: int) -> mpb.BundleRejection:
    rejection = mpb.BundleRejection(schema_version=plan.schema_version)
    used = 0
    for result in plan.results:
        if result.outcome is not Outcome.REJECTED:
            continue  # every other update is NOT_APPLIED; no need to list them
        entry = result_to_proto(result)
        size = entry.ByteSize() + 4
        if used + size > budget:
            break
        rejection.results.append(entry)
        used += size
    return rejection


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _precondition(impact: ImpactReport) -> error_details_pb2.PreconditionFailure:
    failure = error_details_pb2.PreconditionFailure()
    for key, count in sorted(impact.invalid_by_key.items()):
        failure.violations.add(
            type="STORED_METADATA",
            subject=f'metadata["{key}"]',
            description=f"{count} stored record(s) hold a value of this key that the new "
            "schema version rejects",
        )
    return failure


def to_rpc_status(error: MetaregError, budget: int = DEFAULT_DETAIL_BYTES) -> status_pb2.Status:
    """The google.rpc.Status for a domain error, details cut to about `budget` bytes."""
    message = error.message
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    status = status_pb2.Status(code=getattr(code_pb2, error.code.name), message=message)
    if error.violations:
        share = budget // 2 if isinstance(error, InvalidMetadata) else budget
        status.details.append(_pack(_bad_request(error.violations, share)))
    if isinstance(error, InvalidMetadata) and isinstance(error.detail, BundlePlan):
        status.details.append(_pack(_rejection(error.detail, budget // 2)))
    if isinstance(error, InvalidQuery):
        info = error_details_pb2.ErrorInfo(reason=QUERY_ERROR_REASON, domain=ERROR_DOMAIN)
        info.metadata.update(error.info)
        status.details.append(_pack(info))
    if isinstance(error, IncompatibleChange) and isinstance(error.impact, ImpactReport):
        status.details.append(_pack(_precondition(error.impact)))
        status.details.append(_pack(impact_to_proto(error.impact)))
    return status
