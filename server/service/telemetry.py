"""What the use cases tell the server's operators: the stages of a bundle (spans of a
trace) and what their calls did (metrics).

`Telemetry` itself records nothing, for a few no-op calls per bundle; the server passes
one that records (app.telemetry) when metrics or traces are on. Nothing here may hold
a value or a data unit id: stage attributes and counts only.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

from ..domain.bundle import UpdateResult
from ..domain.validator import Problem

# The stages of ApplyBundle, each a span when traces are on.
STAGE_DECODE = "bundle.decode_validate"  # the records decoded and checked against the schema
STAGE_LOCK = "bundle.lock"  # the write transaction begun, the schema row locked
STAGE_LOAD = "bundle.load"  # the idempotency key and the stored records read
STAGE_PLAN = "bundle.plan"  # the merge of each update with its stored record
STAGE_WRITE = "bundle.write"  # the records (and the key's outcome) written
STAGE_COMMIT = "bundle.commit"

_NOTHING: AbstractContextManager[None] = nullcontext()

# Per invalid record of a validation: (index, data_unit_id, problems).
InvalidRecords = Sequence[tuple[int, str, Sequence[Problem]]]


class Telemetry:
    def stage(self, name: str, records: int | None = None) -> AbstractContextManager[object]:
        """A context around one stage (`records`: how many it handles, if known)."""
        return _NOTHING

    def bundle_applied(self, schema: str, results: Sequence[UpdateResult], replayed: bool) -> None:
        """A bundle committed (or was replayed from its idempotency key)."""

    def bundle_rejected(self, schema: str, results: Sequence[UpdateResult]) -> None:
        """An atomic bundle was refused for its invalid updates; nothing was written."""

    def validated(self, invalid: InvalidRecords) -> None:
        """ValidateMetadata checked records; `invalid` are those that break a rule."""


NO_TELEMETRY = Telemetry()
