"""Bundle: collect updates and send them as ApplyBundle requests of at most 1000.

Each request is its own transaction. A bundle of more than 1000 updates is therefore
several transactions: when a later request fails, the earlier ones stay applied. The
bundle stops at the first failed request and raises BundleError, whose `results` say,
for every update, whether it was applied, rejected, not applied or never sent.
Every request carries a fresh idempotency key, so retrying it after UNAVAILABLE or
DEADLINE_EXCEEDED can never apply it twice.
"""

from __future__ import annotations

import re
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Literal, NoReturn, Protocol

import grpc

from metareg.v1 import metadata_pb2 as mpb

from ._errors import BundleError, CallError, ValueConversionError
from ._results import FieldViolation, Outcome, UpdateResult, Violation
from ._transport import IDEMPOTENT_WRITE_RETRY_CODES, Transport
from ._values import check_text, encode_metadata

MAX_UPDATES_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""Start a new request before one grows past this (the server accepts 64 MiB)."""

UpdateModeName = Literal["merge", "replace", "keep_existing"]
_MODES = {
    "merge": mpb.UPDATE_MODE_MERGE,
    "replace": mpb.UPDATE_MODE_REPLACE,
    "keep_existing": mpb.UPDATE_MODE_KEEP_EXISTING,
}
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
_UPDATE_FIELD = re.compile(r"^updates\[(\d+)\]")


def update_mode(mode: str) -> int:
    try:
        return int(_MODES[mode.lower()])
    except (KeyError, AttributeError):
        raise ValueError(f"unknown mode {mode!r}; use one of: {', '.join(_MODES)}") from None


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


class ProgressBar(Protocol):
    """Anything with tqdm's `update(n)`."""

    def update(self, n: int = 1) -> object: ...


Progress = Callable[[ChunkResult], object] | ProgressBar


class Bundle:
    """Updates for one schema, sent every 1000 updates and at the end of a `with` block.

    Use as a context manager (`with client.bundle("cams") as bundle:`). Nothing pending
    is sent if the block raises. `results` lists one UpdateResult per update, in order.
    With `partial=True` the valid updates of each request commit and invalid ones are
    reported as REJECTED; by default one invalid update rejects its whole request and
    the bundle stops there with BundleError.
    """

    def __init__(
        self,
        transport: Transport,
        schema: str,
        *,
        partial: bool = False,
        progress: Progress | None = None,
        coerce_strings: bool = False,
        flatten_nested: bool = False,
        keep_results: bool = True,
        max_updates: int = MAX_UPDATES_PER_REQUEST,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.schema = schema
        self.partial = partial
        self.coerce_strings = coerce_strings
        self.flatten_nested = flatten_nested
        self.keep_results = keep_results
        self.results: list[UpdateResult] = []
        self.chunks: list[ChunkResult] = []
        self.counts: Counter[Outcome] = Counter()
        self._transport = transport
        self._progress = progress
        self._max_updates = max(1, min(max_updates, MAX_UPDATES_PER_REQUEST))
        self._max_bytes = max_request_bytes
        self._request: mpb.ApplyBundleRequest | None = None
        self._request_bytes = 0
        self._first = 0  # bundle index of the pending request's first update
        self._closed = False

    def __del__(self) -> None:
        if getattr(self, "_request", None) is not None and not self._closed and self.pending:
            warnings.warn(
                f"a Bundle for {self.schema!r} was dropped with {self.pending} unsent "
                "update(s); use it in a `with` block or call close()",
                ResourceWarning,
                stacklevel=2,
            )

    # --- the public surface ----------------------------------------------------

    def __enter__(self) -> Bundle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abandon()

    @property
    def pending(self) -> int:
        """Updates queued but not sent yet."""
        return len(self._request.updates) if self._request is not None else 0

    @property
    def failed_chunk(self) -> ChunkResult | None:
        return next((c for c in self.chunks if not c.ok), None)

    @property
    def applied_count(self) -> int:
        return self.counts[Outcome.APPLIED]

    @property
    def rejected_count(self) -> int:
        return self.counts[Outcome.REJECTED]

    def update(
        self,
        data_unit_id: str,
        metadata: Mapping[str, object],
        mode: UpdateModeName | str = "merge",
    ) -> None:
        """Queue one update; sends a request when 1000 are queued (or ~32 MiB).

        merge (RFC 7386: a None value removes the key), replace (the record becomes exactly
        these keys) or keep_existing (only keys the record lacks are added).
        """
        if self._closed:
            raise RuntimeError(
                "this bundle is closed (it was sent, or stopped after a failed request); "
                "start a new one with client.bundle(...)"
            )
        mode_value = update_mode(mode)
        if type(data_unit_id) is not str:
            raise ValueConversionError(f"data_unit_id must be a string, not {data_unit_id!r}")
        check_text(data_unit_id, "data_unit_id")
        request = self._request or self._start_request()
        update = request.updates.add(data_unit_id=data_unit_id, mode=mode_value)
        try:
            encode_metadata(metadata, update.metadata, flatten_nested=self.flatten_nested)
        except ValueConversionError as error:
            del request.updates[-1]
            raise ValueConversionError(
                f"data unit {data_unit_id!r}: {error.message}", error.key
            ) from None
        size = update.ByteSize() + 8  # plus the field tag and length prefix
        if self._request_bytes + size > self._max_bytes and len(request.updates) > 1:
            request = self._send_all_but_last(request)
        self._request_bytes += size
        if len(request.updates) >= self._max_updates:
            self.flush()

    def flush(self) -> None:
        """Send the queued updates now (raises BundleError if the request fails)."""
        request, self._request = self._request, None
        if request is not None and request.updates:
            self._send(request)

    def close(self) -> None:
        """Send what is queued and close the bundle."""
        try:
            self.flush()
        finally:
            self._closed = True

    # --- sending ----------------------------------------------------------------

    def _start_request(self) -> mpb.ApplyBundleRequest:
        self._request = mpb.ApplyBundleRequest(
            schema=self.schema, partial=self.partial, coerce_strings=self.coerce_strings
        )
        self._request_bytes = 0
        return self._request

    def _send_all_but_last(self, request: mpb.ApplyBundleRequest) -> mpb.ApplyBundleRequest:
        """Send the queued updates except the newest, which starts the next request
        (queued before sending, so that a failure reports it as NOT_SENT)."""
        following = self._start_request()
        following.updates.append(request.updates[-1])
        del request.updates[-1]
        self._send(request)
        return following

    def _send(self, request: mpb.ApplyBundleRequest) -> None:
        first, size = self._first, len(request.updates)
        self._first += size
        request.idempotency_key = uuid.uuid4().hex
        index = len(self.chunks)
        try:
            response = self._transport.call(
                self._transport.metadata_service.ApplyBundle,
                request,
                retry_on=IDEMPOTENT_WRITE_RETRY_CODES,
            )
        except CallError as error:
            results = _failed_results(error, request, first, index)
            chunk = ChunkResult(
                index, first, size, request.idempotency_key, error=error, results=results
            )
            self._record(chunk)
            self._fail(chunk, error)
        results = tuple(UpdateResult.from_proto(r, first, index) for r in response.results)
        self._record(
            ChunkResult(
                index,
                first,
                size,
                request.idempotency_key,
                schema_version=response.schema_version,
                applied=response.applied_count,
                unchanged=response.unchanged_count,
                rejected=response.rejected_count,
                replayed=response.replayed,
                results=results,
            )
        )

    def _record(self, chunk: ChunkResult) -> None:
        self.counts.update(r.outcome for r in chunk.results)
        if self.keep_results:
            self.results.extend(chunk.results)
            self.chunks.append(chunk)
        else:
            self.chunks.append(replace(chunk, results=()))
        if self._progress is None:
            return
        if callable(self._progress):
            self._progress(chunk)
        else:
            self._progress.update(chunk.size)

    def _abandon(self) -> list[UpdateResult]:
        """Close without sending; what was queued becomes NOT_SENT."""
        self._closed = True
        request, self._request = self._request, None
        if request is None:
            return []
        unsent = [
            UpdateResult(self._first + i, u.data_unit_id, Outcome.NOT_SENT, chunk=len(self.chunks))
            for i, u in enumerate(request.updates)
        ]
        self._first += len(unsent)
        self.counts.update(r.outcome for r in unsent)
        if self.keep_results:
            self.results.extend(unsent)
        return unsent

    def _fail(self, chunk: ChunkResult, error: CallError) -> NoReturn:
        unsent = self._abandon()
        earlier = self.counts[Outcome.APPLIED] + self.counts[Outcome.UNCHANGED]
        unknown = any(r.outcome is Outcome.UNKNOWN for r in chunk.results)
        fate = (
            "their outcome is unknown (re-sending them is safe)"
            if unknown
            else "none of them was written"
        )
        message = (
            f"request {chunk.index + 1} of the bundle (updates {chunk.first}..{chunk.last}) "
            f"failed, so {fate}: {error}. "
            f"{earlier} update(s) of {chunk.index} earlier request(s) were applied and stay "
            f"applied; {len(unsent)} queued update(s) were not sent"
        )
        results = self.results if self.keep_results else [*chunk.results, *unsent]
        raise BundleError(message, cause=error, failed_chunk=chunk, results=results) from error


def _rejection_results(
    error: CallError, request: mpb.ApplyBundleRequest, first: int, chunk: int
) -> dict[int, UpdateResult]:
    """Rejected updates (request-local index -> result) from the error's details."""
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
        if local in rejected or local >= len(request.updates):
            continue
        duid = request.updates[local].data_unit_id
        violations = tuple(
            Violation(v.field, first + local, duid, "", v.reason, "", v.description) for v in found
        )
        rejected[local] = UpdateResult(
            first + local, duid, Outcome.REJECTED, violations=violations, chunk=chunk
        )
    return rejected


def _failed_results(
    error: CallError, request: mpb.ApplyBundleRequest, first: int, chunk: int
) -> tuple[UpdateResult, ...]:
    if error.code in _NOTHING_WRITTEN:
        rejected = _rejection_results(error, request, first, chunk)
        default = Outcome.NOT_APPLIED
    else:
        rejected, default = {}, Outcome.UNKNOWN
    return tuple(
        rejected.get(i) or UpdateResult(first + i, u.data_unit_id, default, chunk=chunk)
        for i, u in enumerate(request.updates)
    )
