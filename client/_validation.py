"""Validate any number of records: ValidateMetadata requests of at most 1000 records.

Every page is checked against the same schema version (the latest one when the first
page is sent, unless a version is given). A record whose Python values cannot be sent
at all (a nested object, a list of strings…) is reported as a violation with rule
"value" instead of failing the whole call. Records travel in the JSON record form
(`records_json`), encoded once as they are added.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from metareg.v1 import metadata_pb2 as mpb

from ._errors import ValueConversionError
from ._json_form import SchemaEmbeddings, json_array, metadata_json, quoted_id, record_json
from ._results import RecordReport, ValidationReport, Violation
from ._transport import MAX_REQUEST_BYTES, READ_RETRY_CODES, Transport

MAX_RECORDS_PER_REQUEST = 1000


def _conversion_report(index: int, data_unit_id: str, error: ValueConversionError) -> RecordReport:
    key = error.key or ""
    field = f"records[{index}].metadata[{json.dumps(key)}]" if key else f"records[{index}]"
    description = f"record {index} (data_unit_id {json.dumps(data_unit_id)}): {error.message}"
    violation = Violation(field, index, data_unit_id, key, "value", "", description)
    return RecordReport(index, data_unit_id, (violation,))


class Validation:
    """Accumulates records into requests and merges the responses into one report."""

    def __init__(
        self,
        transport: Transport,
        schema: str,
        *,
        version: int = 0,
        coerce_strings: bool = False,
        flatten_nested: bool = False,
    ) -> None:
        self._transport = transport
        self._schema = schema
        self._version = version
        self._coerce = coerce_strings
        self._flatten = flatten_nested
        self._embeddings = SchemaEmbeddings(transport, schema, version)
        self._invalid: list[RecordReport] = []
        self._valid = 0
        self._count = 0  # records seen so far
        self._elements: list[bytes] = []  # the queued records' JSON objects
        self._positions: list[int] = []  # input index of each record of the request
        self._bytes = 0

    def add(self, data_unit_id: str, metadata: Mapping[str, object]) -> None:
        index, quoted = self._next(data_unit_id)
        if quoted is None:
            return
        try:
            values = metadata_json(metadata, self._embeddings, flatten_nested=self._flatten)
        except ValueConversionError as error:
            self._invalid.append(_conversion_report(index, data_unit_id, error))
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
            self._invalid.append(_conversion_report(index, repr(data_unit_id), error))
            return index, None

    def _queue(self, index: int, element: bytes) -> None:
        self._elements.append(element)
        self._positions.append(index)
        self._bytes += len(element) + 1
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
        response = self._transport.call(
            self._transport.metadata_service.ValidateMetadata, request, retry_on=READ_RETRY_CODES
        )
        # Later requests check the same version.
        self._version = response.schema_version
        self._valid += response.valid_count
        for record in response.invalid_records:
            offset = positions[record.index] - record.index
            self._invalid.append(
                RecordReport(
                    record.index + offset,
                    record.data_unit_id,
                    tuple(Violation.from_proto(v, offset) for v in record.violations),
                )
            )

    def report(self) -> ValidationReport:
        self._send()
        invalid = sorted(self._invalid, key=lambda r: r.index)
        return ValidationReport(self._version, invalid, self._valid)

    def page_report(self) -> ValidationReport:
        """The report of the records added since the last call, their indexes counted
        from there; later records are checked against the same schema version."""
        report = self.report()
        self._invalid, self._valid, self._count = [], 0, 0
        return report
