"""Typed client exceptions: one class per gRPC status code, with the rich details unpacked.

    MetaregError                      every exception this package raises
    ├── CallError                     a call ended with a non-OK gRPC status
    │   ├── CancelledError            CANCELLED
    │   ├── UnknownError              UNKNOWN
    │   ├── InvalidArgumentError      INVALID_ARGUMENT     .violations, .bundle_rejection,
    │   │                                                  .query_error
    │   ├── DeadlineExceededError     DEADLINE_EXCEEDED
    │   ├── NotFoundError             NOT_FOUND
    │   ├── AlreadyExistsError        ALREADY_EXISTS
    │   ├── PermissionDeniedError     PERMISSION_DENIED
    │   ├── ResourceExhaustedError    RESOURCE_EXHAUSTED
    │   ├── FailedPreconditionError   FAILED_PRECONDITION  .impact, .precondition_failures
    │   ├── ConflictError             ABORTED (a concurrent change; re-read and retry)
    │   ├── OutOfRangeError           OUT_OF_RANGE
    │   ├── UnimplementedError        UNIMPLEMENTED
    │   ├── InternalError             INTERNAL
    │   ├── UnavailableError          UNAVAILABLE (server unreachable, after retries)
    │   ├── DataLossError             DATA_LOSS
    │   └── UnauthenticatedError      UNAUTHENTICATED
    ├── BundleError                   a bundle request failed; .results says what was applied
    ├── SchemaEditError (ValueError)  a local mistake in a schema edit, caught before any call
    ├── SchemaFileError (ValueError)  a schema file that cannot be read; names file and entry
    ├── DataFileError (ValueError)    a metadata file that cannot be read at all
    └── ValueConversionError (TypeError, ValueError)
                                      a Python value with no metadata representation

Every CallError carries the status `code`, the server's `message` and, where the server
sent them, `violations` (google.rpc.BadRequest), `precondition_failures`
(google.rpc.PreconditionFailure), `impact` (metareg.v1.SchemaImpact) and
`bundle_rejection` (metareg.v1.BundleRejection). `from_grpc_error` builds the right class.
A rejected filter or ordering is an InvalidArgumentError whose `query_error` gives the
column the server pointed at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_pb2 as spb

from ._results import (
    BundleRejection,
    FieldViolation,
    PreconditionViolation,
    QueryErrorPosition,
    SchemaImpact,
    UpdateResult,
)

if TYPE_CHECKING:
    from ._bundle_results import ChunkResult


class MetaregError(Exception):
    """Base of every exception metareg.client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CallError(MetaregError):
    """A gRPC call ended with a non-OK status. Subclasses name the status."""

    grpc_status_code: ClassVar[Any] = None

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        precondition_failures: Sequence[PreconditionViolation] = (),
        impact: SchemaImpact | None = None,
        bundle_rejection: BundleRejection | None = None,
        details: Sequence[Any] = (),
        grpc_error: grpc.RpcError | None = None,
    ) -> None:
        super().__init__(message)
        self.violations: list[FieldViolation] = list(violations)
        self.precondition_failures: list[PreconditionViolation] = list(precondition_failures)
        self.impact = impact
        self.bundle_rejection = bundle_rejection
        self.details: list[Any] = list(details)
        self.grpc_error = grpc_error

    @property
    def code(self) -> grpc.StatusCode:
        return self.grpc_status_code

    @property
    def retry_after(self) -> float | None:
        """Seconds after which the server says the same call may succeed (its
        google.rpc.RetryInfo: a server at capacity that refused the call before running
        it), or None."""
        for detail in self.details:
            if isinstance(detail, error_details_pb2.RetryInfo):
                return float(detail.retry_delay.ToNanoseconds()) / 1e9
        return None

    def add_context(self, context: str) -> None:
        """Prefix the message, e.g. with the file a request came from."""
        self.message = f"{context}: {self.message}"
        self.args = (self.message,)

    def __str__(self) -> str:
        name = self.code.name if self.code is not None else "UNKNOWN"
        return f"{name}: {self.message}"


class CancelledError(CallError):
    grpc_status_code = grpc.StatusCode.CANCELLED


class UnknownError(CallError):
    grpc_status_code = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(CallError):
    grpc_status_code = grpc.StatusCode.INVALID_ARGUMENT

    @property
    def query_error(self) -> QueryErrorPosition | None:
        """For a rejected filter or order_by: the field, the column and the problem."""
        for detail in self.details:
            if isinstance(detail, error_details_pb2.ErrorInfo) and detail.reason == "INVALID_QUERY":
                info = detail.metadata
                return QueryErrorPosition(info["field"], int(info["column"]), info["problem"])
        for violation in self.violations:  # servers that send no ErrorInfo
            position = QueryErrorPosition.from_violation(violation)
            if position is not None:
                return position
        return None


class DeadlineExceededError(CallError):
    grpc_status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(CallError):
    grpc_status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(CallError):
    grpc_status_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(CallError):
    grpc_status_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(CallError):
    grpc_status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(CallError):
    grpc_status_code = grpc.StatusCode.FAILED_PRECONDITION


class ConflictError(CallError):
    """ABORTED: someone changed the same thing concurrently (e.g. the schema was saved
    since you read it). Re-read, re-apply your change and try again."""

    grpc_status_code = grpc.StatusCode.ABORTED


class OutOfRangeError(CallError):
    grpc_status_code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(CallError):
    grpc_status_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(CallError):
    grpc_status_code = grpc.StatusCode.INTERNAL


class UnavailableError(CallError):
    grpc_status_code = grpc.StatusCode.UNAVAILABLE


class DataLossError(CallError):
    grpc_status_code = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(CallError):
    grpc_status_code = grpc.StatusCode.UNAUTHENTICATED


class BundleError(MetaregError):
    """A request of a bundle failed, so the bundle stopped.

    `results` has one entry per update given to the bundle, in order: APPLIED/UNCHANGED
    for earlier requests (each request is its own transaction, so they stay applied),
    REJECTED/NOT_APPLIED/UNKNOWN for the failed request, NOT_SENT for the rest.
    `failed_chunk` describes the failed request and `cause` is its CallError.
    """

    def __init__(
        self,
        message: str,
        *,
        cause: CallError,
        failed_chunk: ChunkResult,
        results: Sequence[UpdateResult],
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.failed_chunk = failed_chunk
        self.results: list[UpdateResult] = list(results)


class SchemaEditError(MetaregError, ValueError):
    """A schema edit that is wrong on its face (unknown type name, enum without values),
    caught before any request. Every other rule is checked by the server."""


class SchemaFileError(MetaregError, ValueError):
    """A schema file that cannot be read or has a malformed entry; the message names both."""


class DataFileError(MetaregError, ValueError):
    """A metadata file that cannot be read at all (a bad line is a reject, not this)."""


class ValueConversionError(MetaregError, TypeError, ValueError):
    """A Python value that has no metadata representation (e.g. a list of booleans).
    `key` names the metadata key when the value of one key is at fault."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


_BY_CODE: dict[Any, type[CallError]] = {
    cls.grpc_status_code: cls for cls in CallError.__subclasses__() if cls.grpc_status_code
}


def exception_class_for(code: grpc.StatusCode) -> type[CallError]:
    """The CallError subclass for a status code (UnknownError for anything unmapped)."""
    return _BY_CODE.get(code, UnknownError)


def _unpack(status: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"details": []}
    for packed in status.details:
        for kind in (
            error_details_pb2.BadRequest,
            error_details_pb2.PreconditionFailure,
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
            mpb.BundleRejection,
            spb.SchemaImpact,
        ):
            if packed.Is(kind.DESCRIPTOR):
                message = kind()
                packed.Unpack(message)
                found["details"].append(message)
                found[kind.DESCRIPTOR.name] = message
    return found


def _status_of(error: grpc.RpcError) -> Any:
    if not callable(getattr(error, "trailing_metadata", None)):
        return None
    try:
        return rpc_status.from_call(error)
    except ValueError:  # a status detail that contradicts the call's own status
        return None


def from_grpc_error(error: grpc.RpcError) -> CallError:
    """The typed exception for a failed gRPC call, with its rich details unpacked."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    message = error.details() if callable(getattr(error, "details", None)) else None
    status = _status_of(error)
    found = _unpack(status) if status is not None else {"details": []}
    violations = [
        FieldViolation(v.field, v.description, v.reason)
        for v in getattr(found.get("BadRequest"), "field_violations", ())
    ]
    preconditions = [
        PreconditionViolation(v.type, v.subject, v.description)
        for v in getattr(found.get("PreconditionFailure"), "violations", ())
    ]
    impact = found.get("SchemaImpact")
    rejection = found.get("BundleRejection")
    return exception_class_for(code)(
        message or (code.name if code else "unknown error"),
        violations=violations,
        precondition_failures=preconditions,
        impact=SchemaImpact.from_proto(impact) if impact is not None else None,
        bundle_rejection=(
            BundleRejection(
                rejection.schema_version,
                tuple(UpdateResult.from_proto(r) for r in rejection.results),
            )
            if rejection is not None
            else None
        ),
        details=found["details"],
        grpc_error=error,
    )
