"""The results of a bundle's ApplyBundle requests, answered or failed (status and details)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from metareg.v1 import metadata_pb2 as mpb

from ._errors import CallError
from ._results import FieldViolation, Outcome, UpdateResult, Violation


@dataclass(frozen=True)
class ChunkResult:
    """One ApplyBundle request of a bundle: updates `first` .. `first + size - 1`."""

    index: int
    first: int
    size: int
    idempotency_key: str
    schema_version: int = 0
    applied: int = 0
    unchanged: int = 0
    rejected: int = 0
    replayed: bool = False
    error: CallError | None = None
    results: tuple[UpdateResult, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def last(self) -> int:
        return self.first + self.size - 1


# Statuses with which the server has certainly written nothing of the request.
_NOTHING_WRITTEN = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
# The server names an update of the JSON form as of the typed one (`updates[3]...`);
# `updates_json[3]` is a malformed record, which is the whole request's failure.
_UPDATE_FIELD = re.compile(r"^updates\[(\d+)\]")


def rejection_results(
    error: CallError, ids: Sequence[str], first: int, chunk: int
) -> dict[int, UpdateResult]:
    """Rejected updates (request-local index -> result) from the error's details; `ids`
    are the request's data unit ids by request-local index."""
    rejected: dict[int, UpdateResult] = {}
    for detail in error.details:
        if isinstance(detail, mpb.BundleRejection):
            for result in detail.results:
                rejected[result.index] = UpdateResult.from_proto(result, first, chunk)
    # The BundleRejection detail may have been cut to its byte budget; the BadRequest
    # violations name every rejected update that it left out.
    by_update: dict[int, list[FieldViolation]] = defaultdict(list)
    for violation in error.violations:
        match = _UPDATE_FIELD.match(violation.field)
        if match is not None:
            by_update[int(match.group(1))].append(violation)
    for local, found in by_update.items():
        if local in rejected or local >= len(ids):
            continue
        duid = ids[local]
        violations = tuple(
            Violation(v.field, first + local, duid, "", v.reason, "", v.description) for v in found
        )
        rejected[local] = UpdateResult(
            first + local, duid, Outcome.REJECTED, violations=violations, chunk=chunk
        )
    return rejected


def failed_results(
    error: CallError, ids: Sequence[str], first: int, chunk: int
) -> tuple[UpdateResult, ...]:
    """One result per update of the failed request: REJECTED where the details say so,
    else NOT_APPLIED, or UNKNOWN when the status leaves open whether it was written."""
    if error.code in _NOTHING_WRITTEN:
        rejected = rejection_results(error, ids, first, chunk)
        default = Outcome.NOT_APPLIED
    else:
        rejected, default = {}, Outcome.UNKNOWN
    return tuple(
        rejected.get(i) or UpdateResult(first + i, duid, default, chunk=chunk)
        for i, duid in enumerate(ids)
    )


@dataclass(frozen=True, slots=True)
class SentRequest:
    """A request of a bundle that was sent: which updates it carried (their data unit
    ids by request-local index, from bundle index `first`)."""

    index: int
    first: int
    ids: list[str]
    idempotency_key: str

    def answered(self, response: mpb.ApplyBundleResponse) -> ChunkResult:
        first, index = self.first, self.index
        return ChunkResult(
            index,
            first,
            len(self.ids),
            self.idempotency_key,
            schema_version=response.schema_version,
            applied=response.applied_count,
            unchanged=response.unchanged_count,
            rejected=response.rejected_count,
            replayed=response.replayed,
            results=tuple(UpdateResult.from_proto(r, first, index) for r in response.results),
        )

    def failed(self, error: CallError) -> ChunkResult:
        results = failed_results(error, self.ids, self.first, self.index)
        size = len(self.ids)
        return ChunkResult(
            self.index, self.first, size, self.idempotency_key, error=error, results=results
        )
