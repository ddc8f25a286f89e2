"""A record read from a source file: what `_datafiles` and `_parquet` produce and the
ingest consumes (a leaf module, so that the readers need not import each other)."""

from __future__ import annotations

import json
from dataclasses import dataclass

ID_COLUMN = "data_unit_id"


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record of a file, or why its line could not be read (`error`)."""

    line: int
    data_unit_id: str
    metadata: dict[str, object]
    error: str = ""
    metadata_json: bytes = b""
    """The metadata as the line's JSON object, when passed through (`metadata` is empty)."""
    text: str = ""
    """The line as the file has it (kept for the rejects file), without its line break."""
    origin: str = ""
    """The file the record came from, when that is not the input file (a sidecar)."""

    @property
    def place(self) -> str:
        """Where the record is, for messages: `line 7`, or a sidecar's relative path."""
        return self.origin or f"line {self.line}"

    @property
    def size(self) -> int:
        """About how many bytes of JSON the record is (to refuse one no request can hold)."""
        return max(len(self.metadata_json), len(self.text))

    def decoded_metadata(self) -> dict[str, object]:
        """The metadata as Python values, also when it was passed through as JSON."""
        if self.metadata_json:
            decoded: dict[str, object] = json.loads(self.metadata_json)
            return decoded
        return self.metadata
