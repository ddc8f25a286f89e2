"""Validate any number of records: ValidateMetadata requests of at most 1000 records.

Every page is checked against the same schema version (the latest one when the first
page is sent, unless a version is given). A record whose Python values cannot be sent
at all (a nested object, a list of strings…) is reported as a violation with rule
"value" instead of failing the whole call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from metareg.v1 import metadata_pb2 as mpb

from ._errors import ValueConversionError
from ._results import RecordReport, ValidationReport, Violation
from ._transport import READ_RETRY_CODES, Transport
from ._values import check_text, encode_metadata

MAX_RECORDS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 32 * 1024 * 1024


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
        self._invalid: list[RecordReport] = []
        self._valid = 0
        self._count = 0  # records seen so far
        self._request = self._new_request()
        self._positions: list[int] = []  # input index of each record of the request
        self._bytes = 0

    def _new_request(self) -> mpb.ValidateMetadataRequest:
        return mpb.ValidateMetadataRequest(
            schema=self._schema, schema_version=self._version, coerce_strings=self._coerce
        )

    def add(self, data_unit_id: str, metadata: Mapping[str, object]) -> None:
        index = self._count
        self._count += 1
        if type(data_unit_id) is not str:
            error = ValueConversionError(f"data_unit_id must be a string, not {data_unit_id!r}")
            self._invalid.append(_conversion_report(index, repr(data_unit_id), error))
            return
        try:
            check_text(data_unit_id, "data_unit_id")
        except ValueConversionError as error:
            self._invalid.append(_conversion_report(index, repr(data_unit_id), error))
            return
        record = self._request.records.add(data_unit_id=data_unit_id)
        try:
            encode_metadata(metadata, record.metadata, flatten_nested=self._flatten)
        except ValueConversionError as error:
            del self._request.records[-1]
            self._invalid.append(_conversion_report(index, data_unit_id, error))
            return
        self._positions.append(index)
        self._bytes += record.ByteSize() + 8
        if len(self._positions) >= MAX_RECORDS_PER_REQUEST or self._bytes > MAX_REQUEST_BYTES:
            self._send()

    def _send(self) -> None:
        request, positions = self._request, self._positions
        self._request, self._positions, self._bytes = self._new_request(), [], 0
        if not request.records:
            return
        response = self._transport.call(
            self._transport.metadata_service.ValidateMetadata, request, retry_on=READ_RETRY_CODES
        )
        # Later requests check the same version.
        self._version = self._request.schema_version = response.schema_version
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
