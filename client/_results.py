"""Plain result objects: violations, per-update results, validation reports, schema impact,
stored records and query results."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from metareg.v1 import metadata_pb2 as mpb
from metareg.v1 import schema_pb2 as spb


class Outcome(enum.StrEnum):
    """What happened to one update of a bundle."""

    APPLIED = "applied"
    """Written; the record's revision grew by 1."""
    UNCHANGED = "unchanged"
    """Valid, but it changed nothing."""
    REJECTED = "rejected"
    """Invalid; see the violations."""
    NOT_APPLIED = "not_applied"
    """Valid, but not written because another update of its atomic request was rejected,
    or because its request failed with an error that rules out a write."""
    NOT_SENT = "not_sent"
    """Never sent: the bundle stopped before (an earlier request failed, or the block raised)."""
    UNKNOWN = "unknown"
    """Its request failed without an answer (e.g. UNAVAILABLE after every retry). It may have
    been applied; re-sending the same content is safe, since merge updates are idempotent."""


_OUTCOMES = {
    mpb.UPDATE_OUTCOME_APPLIED: Outcome.APPLIED,
    mpb.UPDATE_OUTCOME_UNCHANGED: Outcome.UNCHANGED,
    mpb.UPDATE_OUTCOME_REJECTED: Outcome.REJECTED,
    mpb.UPDATE_OUTCOME_NOT_APPLIED: Outcome.NOT_APPLIED,
}


def _reindexed(text: str, pattern: str, offset: int) -> str:
    """`records[3]…` -> `records[1003]…` for an item of a later page of one logical call."""
    if not offset:
        return text
    return re.sub(pattern, lambda m: f"{m.group(1)}{int(m.group(2)) + offset}", text, count=1)


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One entry of a `google.rpc.BadRequest`: a request field and what is wrong with it."""

    field: str
    description: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.field}: {self.description}" if self.field else self.description


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule of one record or update.

    `index` counts records (or updates) across the whole call, also when the client sent
    them in several requests; `field` and `description` are numbered the same way.
    """

    field: str
    index: int
    data_unit_id: str
    key: str
    rule: str
    value: str
    description: str

    @classmethod
    def from_proto(cls, message: mpb.Violation, offset: int = 0) -> Violation:
        return cls(
            field=_reindexed(message.field, r"^(\w+\[)(\d+)", offset),
            index=message.index + offset,
            data_unit_id=message.data_unit_id,
            key=message.key,
            rule=message.rule,
            value=message.value,
            description=_reindexed(message.description, r"^(record )(\d+)", offset),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "key": self.key,
            "rule": self.rule,
            "value": self.value,
            "description": self.description,
        }

    def __str__(self) -> str:
        return self.description


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """The result of one update of a bundle. `index` counts from 0 across the whole bundle;
    `chunk` is the index of the request that carried it."""

    index: int
    data_unit_id: str
    outcome: Outcome
    revision: int = 0
    violations: tuple[Violation, ...] = ()
    chunk: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.APPLIED, Outcome.UNCHANGED)

    @classmethod
    def from_proto(cls, message: mpb.UpdateResult, offset: int = 0, chunk: int = 0) -> UpdateResult:
        return cls(
            index=message.index + offset,
            data_unit_id=message.data_unit_id,
            outcome=_OUTCOMES.get(message.outcome, Outcome.UNKNOWN),
            revision=message.revision,
            violations=tuple(Violation.from_proto(v, offset) for v in message.violations),
            chunk=chunk,
        )


@dataclass(frozen=True, slots=True)
class RecordReport:
    """One invalid record of a validation, with every violation it has."""

    index: int
    data_unit_id: str
    violations: tuple[Violation, ...]


@dataclass(frozen=True)
class ValidationReport:
    """The result of `Client.validate`: nothing was written."""

    schema_version: int
    invalid_records: list[RecordReport] = field(default_factory=list)
    valid_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.invalid_records

    @property
    def invalid_count(self) -> int:
        return len(self.invalid_records)

    @property
    def violations(self) -> list[Violation]:
        return [v for record in self.invalid_records for v in record.violations]

    def __iter__(self) -> Iterator[RecordReport]:
        return iter(self.invalid_records)

    def __str__(self) -> str:
        head = (
            f"schema version {self.schema_version}: {self.valid_count} valid, "
            f"{self.invalid_count} invalid record(s)"
        )
        return "\n".join([head, *(f"  {v.description}" for v in self.violations)])


@dataclass(frozen=True)
class SchemaImpact:
    """What a schema change does to the metadata already stored."""

    invalid_records: int = 0
    sample_data_unit_ids: tuple[str, ...] = ()
    invalid_records_by_key: Mapping[str, int] = field(default_factory=dict)
    purged_records_by_key: Mapping[str, int] = field(default_factory=dict)
    # Per required key, the stored records that would lack it (force leaves them so).
    missing_records_by_key: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, message: spb.SchemaImpact) -> SchemaImpact:
        return cls(
            invalid_records=message.invalid_records,
            sample_data_unit_ids=tuple(message.sample_data_unit_ids),
            invalid_records_by_key=dict(sorted(message.invalid_records_by_key.items())),
            purged_records_by_key=dict(sorted(message.purged_records_by_key.items())),
            missing_records_by_key=dict(sorted(message.missing_records_by_key.items())),
        )

    def describe(self) -> list[str]:
        """One line per effect; empty when the change touches no stored record."""
        lines = []
        if self.invalid_records:
            samples = ", ".join(self.sample_data_unit_ids)
            lines.append(
                f"{self.invalid_records} stored record(s) would become invalid (e.g. {samples})"
            )
            lines += [f"  {k}: {n} record(s)" for k, n in self.invalid_records_by_key.items()]
            lines += [
                f"  {k}: {n} record(s) lack it (required)"
                for k, n in self.missing_records_by_key.items()
            ]
        lines += [
            f"hard delete of {k} purges its value from {n} record(s)"
            for k, n in self.purged_records_by_key.items()
        ]
        return lines


@dataclass(frozen=True, slots=True)
class PreconditionViolation:
    """One entry of a `google.rpc.PreconditionFailure`."""

    type: str
    subject: str
    description: str


@dataclass(frozen=True, slots=True)
class BundleRejection:
    """The `metareg.v1.BundleRejection` detail of a rejected atomic request."""

    schema_version: int
    results: tuple[UpdateResult, ...]


@dataclass(frozen=True, slots=True)
class SchemaVersionInfo:
    """One entry of a schema's history."""

    version: int
    created_at: datetime | None
    changes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SchemaSummary:
    """A schema's latest state, as listed by `Client.list_schemas`."""

    name: str
    latest_version: int
    active_keys: int
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One change in the server's audit log (`Client.audit_events`)."""

    id: int
    time: datetime | None
    key_name: str
    peer: str
    rpc: str
    schema: str
    summary: str
    outcome: str

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["time"] = self.time.isoformat() if self.time else None
        return data


@dataclass(frozen=True, slots=True)
class SchemaUpdate:
    """The result of a schema import: the changes made (or, in a dry run, that would be)."""

    name: str
    version: int
    changed: bool
    applied_changes: tuple[str, ...]
    impact: SchemaImpact
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One stored record, as a query returns it.

    `metadata` has the same form as the values of `Client.get_metadata` (embeddings are
    lists of floats). `to_dict()` gives the `{"data_unit_id": ..., "metadata": {...}}`
    form that `metareg metadata get` prints and `Client.apply` accepts.
    """

    data_unit_id: str
    metadata: dict[str, object]
    schema_version: int = 0
    """The schema version the record was last validated against."""
    revision: int = 0
    """Grows by 1 on every change of the record."""
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"data_unit_id": self.data_unit_id, "metadata": self.metadata}


@dataclass(frozen=True, slots=True)
class FilterUpdate:
    """The result of `Client.update_by_filter`."""

    matched_count: int
    """Records the filter matched."""
    updated_count: int
    """Records the patch changed: 0 with `validate_only`, and matches the patch left as
    they were are not counted."""
    schema_version: int
    validate_only: bool = False


# The server words every filter and ordering error so: "filter error at column 5: ...".
_QUERY_ERROR = re.compile(
    r"^(?P<field>\w+) error at column (?P<column>\d+): (?P<problem>.*)$",
    re.S,
)


@dataclass(frozen=True, slots=True)
class QueryErrorPosition:
    """Where the server found a mistake in a filter or an ordering.

    `field` is "filter" or "order_by"; `column` counts characters of that text from 1
    (one past the end for a filter that stops too early).
    """

    field: str
    column: int
    problem: str

    @classmethod
    def from_violation(cls, violation: FieldViolation) -> QueryErrorPosition | None:
        """The position a query violation names (reason "query"), else None."""
        if violation.reason != "query":
            return None
        match = _QUERY_ERROR.match(violation.description)
        if match is None:
            return None
        return cls(match["field"], int(match["column"]), match["problem"])

    def pointer(self, text: str) -> tuple[str, str]:
        """The line of `text` holding the column, and a line with a caret under it."""
        offset = min(max(self.column - 1, 0), len(text))
        start = text.rfind("\n", 0, offset) + 1
        end = text.find("\n", offset)
        line = text[start : end if end >= 0 else len(text)]
        # Keep tabs so that the caret lines up however the terminal expands them.
        padding = "".join(c if c == "\t" else " " for c in text[start:offset])
        return line, padding + "^"
