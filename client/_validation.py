"""Validate any number of records: ValidateMetadata requests of at most 1000 records.

Every page is checked against the same schema version (the latest one when the first
page is sent, unless a version is given). A record whose Python values cannot be sent
at all (a nested object, a list of strings…) is reported as a violation with rule
"value" instead of failing the whole call. Records travel in the JSON record form
(`records_json`), encoded once as they are added.

One request is in flight while the next is built: the wait for the server releases the
GIL, so the caller's thread encodes (or reads a file) meanwhile. The first request is
answered before another is sent, since its answer pins the schema version.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future

from metareg.v1 import metadata_pb2 as mpb

from ._errors import ValueConversionError
from ._json_form import SchemaEmbeddings, json_array, metadata_json, quoted_id, record_json
from ._results import RecordReport, ValidationReport, Violation
from ._transport import MAX_REQUEST_BYTES, READ_RETRY_CODES, Transport

MAX_RECORDS_PER_REQUEST = 1000
_YIELD_EVERY = 64  # records queued between two chances for the request thread to run

Answered = Callable[[Sequence[int], Sequence[RecordReport]], None]
"""Told, on the caller's thread, the input indexes whose check is over and the reports
of the invalid ones among them."""


def _conversion_report(index: int, data_unit_id: str, error: ValueConversionError) -> RecordReport:
    key = error.key or ""
    field = f"records[{index}].metadata[{json.dumps(key)}]" if key else f"records[{index}]"
    description = f"record {index} (data_unit_id {json.dumps(data_unit_id)}): {error.message}"
    violation = Violation(field, index, data_unit_id, key, "value", "", description)
    return RecordReport(index, data_unit_id, (violation,))


class Validation:
    """Accumulates records into requests and merges the responses into one report.

    With `on_answer`, each answer is handed over as it arrives instead of being kept
    for `report()` (which then holds only the counts): the CLI checks files of any
    length that way.
    """

    def __init__(
        self,
        transport: Transport,
        schema: str,
        *,
        version: int = 0,
        coerce_strings: bool = False,
        flatten_nested: bool = False,
        on_answer: Answered | None = None,
    ) -> None:
        self._transport = transport
        self._schema = schema
        self._version = version
        self._coerce = coerce_strings
        self._flatten = flatten_nested
        self._on_answer = on_answer
        self._embeddings = SchemaEmbeddings(transport, schema, version)
        self._invalid: list[RecordReport] = []
        self._valid = 0
        self._count = 0  # records seen so far
        self._elements: list[bytes] = []  # the queued records' JSON objects
        self._positions: list[int] = []  # input index of each record of the request
        self._bytes = 0
        self._in_flight: _InFlight | None = None

    def add(self, data_unit_id: str, metadata: Mapping[str, object]) -> None:
        index, quoted = self._next(data_unit_id)
        if quoted is None:
            return
        try:
            values = metadata_json(metadata, self._embeddings, flatten_nested=self._flatten)
        except ValueConversionError as error:
            self._refuse(_conversion_report(index, data_unit_id, error))
            return
        self._queue(index, record_json(quoted, values))

    def add_json(self, data_unit_id: str, metadata: bytes) -> None:
        """`add()` for metadata that is already one JSON object's UTF-8 bytes, sent as it
        is (see Bundle._update_json for what the caller makes sure of)."""
        index, quoted = self._next(data_unit_id)
        if quoted is not None:
            self._queue(index, record_json(quoted, metadata))

    def _next(self, data_unit_id: str) -> tuple[int, bytes | None]:
        """The next record's input index, and its id as JSON (None when it cannot be sent:
        then it is reported invalid)."""
        index = self._count
        self._count += 1
        try:
            return index, quoted_id(data_unit_id)
        except ValueConversionError as error:
            self._refuse(_conversion_report(index, repr(data_unit_id), error))
            return index, None

    def _refuse(self, report: RecordReport) -> None:
        """A record that cannot be sent: invalid without asking the server."""
        if self._on_answer is not None:
            self._on_answer((report.index,), (report,))
        else:
            self._invalid.append(report)

    def _queue(self, index: int, element: bytes) -> None:
        self._elements.append(element)
        self._positions.append(index)
        self._bytes += len(element) + 1
        if not len(self._positions) % _YIELD_EVERY and self._in_flight is not None:
            # Let the request's thread take its answer: queueing holds the GIL, and the
            # thread would otherwise wait up to the switch interval (5 ms) for it.
            time.sleep(0)
        if len(self._positions) >= MAX_RECORDS_PER_REQUEST or self._bytes > MAX_REQUEST_BYTES:
            self._send()

    def _send(self) -> None:
        elements, positions = self._elements, self._positions
        self._elements, self._positions, self._bytes = [], [], 0
        if not elements:
            return
        request = mpb.ValidateMetadataRequest(
            schema=self._schema,
            schema_version=self._version,
            coerce_strings=self._coerce,
            records_json=json_array(elements),
        )
        self._collect()  # one request in flight at a time
        if not self._version:  # the first answer pins the version the others check
            self._merge(positions, self._call(request))
            return
        self._in_flight = _InFlight(positions, self._call, request)

    def _call(self, request: mpb.ValidateMetadataRequest) -> mpb.ValidateMetadataResponse:
        return self._transport.call(
            self._transport.metadata_service.ValidateMetadata, request, retry_on=READ_RETRY_CODES
        )

    def _collect(self) -> None:
        """Wait for the request in flight, if any, and take its answer (or its error). An
        interrupted wait (Ctrl-C) leaves it in flight, for `close()` to abandon."""
        if self._in_flight is not None:
            response = self._in_flight.result()
            positions, self._in_flight = self._in_flight.positions, None
            self._merge(positions, response)

    def _merge(self, positions: list[int], response: mpb.ValidateMetadataResponse) -> None:
        self._version = response.schema_version
        self._valid += response.valid_count
        invalid = []
        for record in response.invalid_records:
            offset = positions[record.index] - record.index
            invalid.append(
                RecordReport(
                    record.index + offset,
                    record.data_unit_id,
                    tuple(Violation.from_proto(v, offset) for v in record.violations),
                )
            )
        if self._on_answer is not None:
            self._on_answer(positions, invalid)
        else:
            self._invalid += invalid

    def report(self) -> ValidationReport:
        """Send what is queued and wait for every answer: the report of all records (with
        `on_answer`, only the version and the valid count)."""
        try:
            self._send()
            self._collect()
        finally:
            self.close()
        invalid = sorted(self._invalid, key=lambda r: r.index)
        return ValidationReport(self._version, invalid, self._valid)

    def close(self) -> None:
        """Stop without waiting: a request still in flight is abandoned (its thread ends
        with the call, and never keeps the process from exiting)."""
        self._in_flight = None
        self._elements, self._positions, self._bytes = [], [], 0


class _InFlight:
    """One request sent from a daemon thread of its own, and its answer to come."""

    def __init__(
        self,
        positions: list[int],
        call: Callable[[mpb.ValidateMetadataRequest], mpb.ValidateMetadataResponse],
        request: mpb.ValidateMetadataRequest,
    ) -> None:
        self.positions = positions
        self._answer: Future[mpb.ValidateMetadataResponse] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(call, request), name="metareg-check", daemon=True
        )
        self._thread.start()

    def _run(
        self,
        call: Callable[[mpb.ValidateMetadataRequest], mpb.ValidateMetadataResponse],
        request: mpb.ValidateMetadataRequest,
    ) -> None:
        try:
            self._answer.set_result(call(request))
        except BaseException as error:  # handed to the waiting caller
            self._answer.set_exception(error)

    def result(self) -> mpb.ValidateMetadataResponse:
        """The response (or the call's error), once the thread has ended."""
        try:
            return self._answer.result()
        finally:
            if self._answer.done():
                self._thread.join()
