"""Bundle: collect updates and send them as ApplyBundle requests of at most 1000.

Each request is its own transaction. A bundle of more than 1000 updates is therefore
several transactions: when a later request fails, the earlier ones stay applied. The
bundle stops at the first failed request and raises BundleError, whose `results` say,
for every update, whether it was applied, rejected, not applied or never sent.
Every request carries a fresh idempotency key, so retrying it after UNAVAILABLE or
DEADLINE_EXCEEDED can never apply it twice.

Updates are encoded into the JSON record form as they are queued. While one request
is in flight (on one background thread), the bundle goes on queueing and encoding the
next, so the server applies request n while the client builds n+1; request n+1 is sent
only once request n has answered, and results are collected in the caller's thread.
"""

from __future__ import annotations

import contextvars
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Literal, NoReturn, Protocol

from metareg.v1 import metadata_pb2 as mpb

from ._bundle_results import ChunkResult, SentRequest
from ._errors import BundleError, CallError, UnknownError, ValueConversionError
from ._json_form import (
    SchemaEmbeddings,
    json_array,
    metadata_json,
    mode_end,
    quoted_id,
    record_json,
)
from ._results import Outcome, UpdateResult
from ._transport import IDEMPOTENT_WRITE_RETRY_CODES, MAX_REQUEST_BYTES, Transport
from ._values import mode_name

MAX_UPDATES_PER_REQUEST = 1000
_YIELD_EVERY = 64  # updates queued between two chances for the request thread to run
_REQUEST_OVERHEAD = 64
"""Bytes of a request besides its schema name and JSON: key, flags, field tags."""

UpdateModeName = Literal["merge", "replace", "keep_existing"]
_MODES = {
    "merge": mpb.UPDATE_MODE_MERGE,
    "replace": mpb.UPDATE_MODE_REPLACE,
    "keep_existing": mpb.UPDATE_MODE_KEEP_EXISTING,
}


def update_mode(mode: str) -> int:
    """The typed form's UpdateMode for a mode name (update_by_filter)."""
    return int(_MODES[mode_name(mode)])


class ProgressBar(Protocol):
    """Anything with tqdm's `update(n)`."""

    def update(self, n: int = 1) -> object: ...


Progress = Callable[[ChunkResult], object] | ProgressBar


@dataclass(slots=True)
class _Queued:
    """The updates of the next request, from bundle index `first`: JSON objects and ids."""

    first: int
    elements: list[bytes] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    size: int = 0  # JSON bytes, separators included


def _apply(transport: Transport, request: mpb.ApplyBundleRequest) -> mpb.ApplyBundleResponse:
    # A function of the transport only, so that a request in flight keeps no bundle alive.
    return transport.call(
        transport.metadata_service.ApplyBundle, request, retry_on=IDEMPOTENT_WRITE_RETRY_CODES
    )


class Bundle:
    """Updates for one schema, sent every 1000 updates and at the end of a `with` block.

    Use as a context manager (`with client.bundle("cams") as bundle:`). Nothing queued
    is sent if the block raises. `results` lists one UpdateResult per update, in order.
    With `partial=True` the valid updates of each request commit and invalid ones are
    reported as REJECTED; by default one invalid update rejects its whole request and
    the bundle stops there with BundleError.

    At most one request is in flight while the next is being queued. Its failure is
    raised by the call that next waits for it: the `update()` that sends the following
    request, `flush()` or `close()`; every update queued after it is then NOT_SENT.
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
        idempotency_key: Callable[[int, bytes], str] | None = None,
    ) -> None:
        self.schema = schema
        self._key_of = idempotency_key
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
        self._max_bytes = (
            max_request_bytes - _REQUEST_OVERHEAD - len(schema.encode(errors="replace"))
        )
        self._embeddings = SchemaEmbeddings(transport, schema)
        self._queued = _Queued(0)
        self._requests = 0  # requests taken so far: the next one's chunk index
        self._in_flight: tuple[SentRequest, Future[mpb.ApplyBundleResponse]] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        if self.pending or self._in_flight is not None:
            unread = " and a request whose result was never read" if self._in_flight else ""
            warnings.warn(
                f"a Bundle for {self.schema!r} was dropped with {self.pending} unsent "
                f"update(s){unread}; use it in a `with` block or call close()",
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
        return len(self._queued.ids)

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
        these keys) or keep_existing (only keys the record lacks are added). A value with
        no metadata representation raises ValueConversionError and queues nothing.
        """
        self._check_open()
        end = mode_end(mode)
        quoted = quoted_id(data_unit_id)
        try:
            values = metadata_json(metadata, self._embeddings, flatten_nested=self.flatten_nested)
        except ValueConversionError as error:
            raise ValueConversionError(
                f"data unit {data_unit_id!r}: {error.message}", error.key
            ) from None
        self._queue(data_unit_id, record_json(quoted, values, end))

    def _update_json(
        self, data_unit_id: str, metadata: bytes, mode: UpdateModeName | str = "merge"
    ) -> None:
        """`update()` for metadata that is already one JSON object's UTF-8 bytes (the CLI
        passes file lines through). It is sent as it is: the caller makes sure it is an
        object with no number beyond a double, since the server refuses the whole request
        for JSON it cannot decode."""
        self._check_open()
        end = mode_end(mode)
        self._queue(data_unit_id, record_json(quoted_id(data_unit_id), metadata, end))

    def flush(self) -> None:
        """Send the queued updates now and wait for every answer (raises BundleError if a
        request failed)."""
        self._collect()
        if not self._queued.ids:
            return
        sent, request = self._take_request()
        try:
            response = _apply(self._transport, request)
        except CallError as error:
            self._record_failure(sent, error, stop=True)
        else:
            self._record(sent.answered(response))

    def close(self) -> None:
        """Send what is queued, wait for it, and close the bundle."""
        try:
            self.flush()
        finally:
            self._closed = True
            self._stop_thread()

    # --- queueing and sending ------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                "this bundle is closed (it was sent, or stopped after a failed request); "
                "start a new one with client.bundle(...)"
            )

    def _queue(self, data_unit_id: str, element: bytes) -> None:
        queued = self._queued
        size = len(element) + 1
        queued.elements.append(element)
        queued.ids.append(data_unit_id)
        if not len(queued.ids) % _YIELD_EVERY and self._in_flight is not None:
            # Let the request's thread run: queueing holds the GIL, and the thread would
            # otherwise wait up to the switch interval (5 ms by default) to send the
            # request, or to take its answer; measured, that idled the server 5 ms a bundle.
            time.sleep(0)
        if queued.size + size > self._max_bytes and len(queued.ids) > 1:
            # The newest update starts the next request. It is queued before the send,
            # which waits for the request in flight, so that a failure reports it NOT_SENT.
            self._send_in_background(hold_last=True)
            self._queued.size = size
        else:
            queued.size += size
        if len(self._queued.ids) >= self._max_updates:
            self._send_in_background()

    def _take_request(
        self, *, hold_last: bool = False
    ) -> tuple[SentRequest, mpb.ApplyBundleRequest]:
        """The queued updates (all but the newest with `hold_last`) as the next request."""
        queued = self._queued
        if hold_last:
            last = len(queued.ids) - 1
            self._queued = _Queued(queued.first + last, [queued.elements.pop()], [queued.ids.pop()])
        else:
            self._queued = _Queued(queued.first + len(queued.ids))
        updates_json = json_array(queued.elements)
        # A caller's key is derived from what it sends (the CLI: the file and the chunk),
        # so that the same request sent again by another run is applied at most once.
        key = self._key_of(self._requests, updates_json) if self._key_of else uuid.uuid4().hex
        request = mpb.ApplyBundleRequest(
            schema=self.schema,
            updates_json=updates_json,
            partial=self.partial,
            coerce_strings=self.coerce_strings,
            idempotency_key=key,
        )
        self._requests += 1
        return SentRequest(self._requests - 1, queued.first, queued.ids, key), request

    def _send_in_background(self, *, hold_last: bool = False) -> None:
        # Requests are applied in order: n+1 goes once n has answered. Its results are
        # recorded after n+1 is on its way, so that the server never waits for them.
        answered = self._answer()
        sent, request = self._take_request(hold_last=hold_last)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metareg-bundle")
        # In the caller's context, so that what rides on context variables (a trace's
        # span, say) sees the request as the caller's.
        call = contextvars.copy_context().run
        self._in_flight = (sent, self._executor.submit(call, _apply, self._transport, request))
        time.sleep(0)  # let the thread send it now (see _queue)
        if answered is not None:
            self._record(answered[0].answered(answered[1]))

    def _collect(self, *, stop: bool = True) -> None:
        """Wait for the request in flight and record its result (BundleError if it failed
        and `stop`)."""
        answered = self._answer(stop=stop)
        if answered is not None:
            self._record(answered[0].answered(answered[1]))

    def _answer(self, *, stop: bool = True) -> tuple[SentRequest, mpb.ApplyBundleResponse] | None:
        """Wait for the request in flight: its response, or None when there was none or it
        failed (then recorded, and BundleError if `stop`)."""
        if self._in_flight is None:
            return None
        sent, answer = self._in_flight
        try:
            response = answer.result()
        except CallError as error:
            self._in_flight = None
            self._record_failure(sent, error, stop=stop)
            return None
        except Exception as broken:
            if not answer.done():  # an interrupted wait: the request is still in flight
                raise
            # The call broke in this process (a closed channel, say): whether the server
            # applied it is unknown, and the bundle stops as for a failed call.
            self._in_flight = None
            unknown = UnknownError(f"the request could not be completed: {broken!r}")
            self._record_failure(sent, unknown, stop=stop)
            return None
        self._in_flight = None
        return sent, response

    def _record_failure(self, sent: SentRequest, error: CallError, *, stop: bool) -> None:
        chunk = sent.failed(error)
        self._record(chunk)
        if stop:
            self._fail(chunk, error)

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

    def _stop_thread(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            # Nothing is in flight unless a wait was interrupted; then do not block again.
            executor.shutdown(wait=self._in_flight is None, cancel_futures=True)

    def _abandon(self) -> list[UpdateResult]:
        """Close without sending; what was queued becomes NOT_SENT. A request in flight
        was sent: it is waited for and its result recorded."""
        try:
            self._collect(stop=False)
        finally:
            self._closed = True
            self._stop_thread()
        queued = self._queued
        self._queued = _Queued(queued.first + len(queued.ids))
        unsent = [
            UpdateResult(queued.first + i, duid, Outcome.NOT_SENT, chunk=len(self.chunks))
            for i, duid in enumerate(queued.ids)
        ]
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
