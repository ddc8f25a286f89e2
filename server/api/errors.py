"""Map domain errors to gRPC statuses with google.rpc error details.

Details travel in trailing metadata. A default gRPC client starts refusing
metadata over 8 KiB (at random, always past 16 KiB), and the trailer holds the
message twice: percent-encoded in grpc-message and, with the details, base64 in
grpc-status-details-bin. So the message is cut to MAX_MESSAGE_BYTES once encoded
and violations are added until the detail budget is reached; the last entry then
says how many were left out. The defaults keep the trailer under about 7.3 KiB.
A client that raised its own limit may ask for a larger detail budget with the
`metareg-error-detail-bytes` request header.
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
    ResourceExhausted,
)
from ..domain.impact import ImpactReport
from ..domain.names import is_utf8
from .convert import impact_to_proto, result_to_proto

DEFAULT_DETAIL_BYTES = 3300
MAX_DETAIL_BYTES = 4 * 1024 * 1024
DETAIL_BYTES_HEADER = "metareg-error-detail-bytes"
MAX_MESSAGE_BYTES = 1200  # grpc-message, percent-encoded
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
            field=_utf8(violation.field),
            description=_utf8(violation.description),
            reason=violation.reason,
        )
        size = entry.ByteSize() + 4
        if index == 0 and size > budget:  # one violation bigger than the budget: cut it
            entry.description = _cut_to_bytes(entry.description, budget // 2)
            entry.field = _cut_to_bytes(entry.field, budget // 4)
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


def _utf8(text: str) -> str:
    """`text` with any lone surrogate replaced: gRPC sends UTF-8 only."""
    return text if is_utf8(text) else text.encode(errors="replace").decode()


def _cut_to_bytes(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, ending in "…" when cut."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: max(0, limit - 3)].decode(errors="ignore") + "…"


def _wire_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """`message` cut so that its grpc-message header stays within `limit` bytes.

    gRPC percent-encodes every byte outside printable ASCII (and "%"), so one
    character can take up to 12 header bytes.
    """
    used = 0
    for position, char in enumerate(message):
        if " " <= char <= "~" and char != "%":
            used += 1
        else:
            used += 3 * len(char.encode(errors="replace"))
        if used > limit - 9:  # room for the "…", 9 bytes once encoded
            return message[:position] + "…"
    return message


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
    for key, count in sorted(impact.missing_by_key.items()):
        failure.violations.add(
            type="STORED_METADATA",
            subject=f'metadata["{key}"]',
            description=f"{count} stored record(s) lack this key, which the new schema "
            "version requires",
        )
    return failure


def to_rpc_status(error: MetaregError, budget: int = DEFAULT_DETAIL_BYTES) -> status_pb2.Status:
    """The google.rpc.Status for a domain error, details cut to about `budget` bytes."""
    message = _wire_message(_utf8(error.message))
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
    if isinstance(error, ResourceExhausted) and error.retry_after is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(int(error.retry_after * 1e9))
        status.details.append(_pack(info))
    if isinstance(error, IncompatibleChange) and isinstance(error.impact, ImpactReport):
        status.details.append(_pack(_precondition(error.impact)))
        status.details.append(_pack(impact_to_proto(error.impact)))
    return status
