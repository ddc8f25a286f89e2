"""Update modes and bundle planning: validate, merge in order, and decide what to write."""

from __future__ import annotations

import enum
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from .names import data_unit_id_problem, shorten
from .query.index import IndexEntry, index_entries
from .schema import KeyDefinition
from .validator import (
    MAX_RECORD_BYTES,
    CompiledValidator,
    EncodedRecord,
    Problem,
    encode_record,
    record_size_problem,
)

MAX_BUNDLE_UPDATES = 1000


class UpdateMode(enum.Enum):
    MERGE = "merge"
    REPLACE = "replace"
    KEEP_EXISTING = "keep_existing"


def apply_update(
    current: Mapping[str, object] | None,
    patch: Mapping[str, object],
    mode: UpdateMode,
    hidden_keys: frozenset[str] = frozenset(),
) -> dict[str, object]:
    """The record after one update.

    merge follows RFC 7386 for a flat object: keys are set and null removes a key.
    replace keeps only the patch's non-null keys, plus stored values of soft-deleted
    keys, which the caller cannot see and a restore must bring back.
    keep_existing adds only keys the record does not have; nulls are ignored.
    """
    if mode is UpdateMode.REPLACE:
        result = {k: v for k, v in patch.items() if v is not None}
        if current and hidden_keys:
            result.update((k, v) for k, v in current.items() if k in hidden_keys)
        return result
    result = dict(current) if current else {}
    if mode is UpdateMode.MERGE:
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = value
    else:
        for key, value in patch.items():
            if value is not None and key not in result:
                result[key] = value
    return result


def missing_required(
    required: Sequence[str],
    current: Mapping[str, object] | None,
    patch: Mapping[str, object],
    mode: UpdateMode,
    problems: Sequence[Problem] = (),
) -> list[Problem]:
    """A `required` problem for each required key the record would lack after the update.

    `current` is the record before it (None: a new record, which holds exactly the
    patch's non-null values whatever the mode); `patch` the checked values, nulls kept.
    A key with a problem of its own already is not reported again.
    """
    found: list[Problem] = []
    for key in required:
        given = patch.get(key, _ABSENT)
        if given is not _ABSENT and given is not None:
            continue
        # The stored value stays unless the update replaces the record or (merge) nulls it;
        # keep_existing ignores nulls.
        kept = (
            current is not None
            and key in current
            and mode is not UpdateMode.REPLACE
            and (given is _ABSENT or mode is UpdateMode.KEEP_EXISTING)
        )
        if kept or any(p.key == key for p in problems):
            continue
        found.append(_required_problem(key, given is None, current is None, mode))
    return found


_ABSENT = object()


def needs_stored_record(
    required: Sequence[str], patch: Mapping[str, object], mode: UpdateMode
) -> bool:
    """Whether the stored record decides if the update leaves a required key missing."""
    if mode is UpdateMode.REPLACE:
        return False
    return any(patch.get(key) is None for key in required)


class RequiredKeyChain:
    """The `required` rule over a request's records taken as updates in order, as a
    bundle would apply them: each valid one changes what the next one for its data unit
    starts from. Only the presence of the required keys is tracked."""

    def __init__(self, required: Sequence[str], stored: Mapping[str, Mapping[str, object]]):
        self.required = required
        self._records: dict[str, dict[str, object] | None] = {
            duid: {k: True for k in required if k in values} for duid, values in stored.items()
        }

    def check(
        self, data_unit_id: str, patch: Mapping[str, object], mode: UpdateMode,
        problems: Sequence[Problem],
    ) -> list[Problem]:  # fmt: skip
        current = self._records.get(data_unit_id)
        lacking = missing_required(self.required, current, patch, mode, problems)
        if not lacking and not problems:
            given = {k: patch[k] for k in self.required if k in patch}
            self._records[data_unit_id] = (
                without_nulls(given) if current is None else apply_update(current, given, mode)
            )
        return lacking


def _required_problem(key: str, nulled: bool, new: bool, mode: UpdateMode) -> Problem:
    if nulled and not new and mode is UpdateMode.MERGE:
        why = "a null would remove it from the record"
    elif new:
        why = "the update would create the record without it"
    elif mode is UpdateMode.REPLACE:
        why = "a replace without it would remove it from the record"
    else:
        why = "the record does not hold it and the update does not set it"
    return Problem(key, "required", f"key is required: {why}", "null" if nulled else "")


# The types made once per update of a bundle (MetadataUpdate, UpdateResult,
# RecordWrite, EncodedRecord, _Working) are msgspec structs that the cyclic garbage
# collector does not track (gc=False: they hold values, never themselves): about 2.5x
# cheaper to make than slotted dataclasses, whose frozen form was 4x slower again.
# They are not frozen, for the same reason; treat them as immutable all the same.


class MetadataUpdate(msgspec.Struct, gc=False):
    data_unit_id: str
    values: dict[str, object]
    mode: UpdateMode = UpdateMode.MERGE
    # Problems found while decoding the wire form (e.g. a value with no kind).
    decode_problems: tuple[Problem, ...] = ()
    # Checked already against the bundle's schema version (see `checked`): `values`
    # are normalised and `decode_problems` holds every problem of the update.
    checked: bool = False


class StoredRecord(msgspec.Struct, gc=False):
    data_unit_id: str
    values: dict[str, object]
    revision: int
    schema_version: int
    updated_at: datetime | None = None


class Outcome(enum.Enum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"
    NOT_APPLIED = "not_applied"


class UpdateResult(msgspec.Struct, array_like=True, gc=False):
    """One update's outcome. A msgspec struct: as JSON it is the array
    [index, data_unit_id, outcome, revision, problems], stored with idempotency keys."""

    index: int
    data_unit_id: str
    outcome: Outcome
    revision: int = 0
    problems: tuple[Problem, ...] = ()


class RecordWrite(msgspec.Struct, gc=False):
    """The final state of one data unit after the bundle, and how to store it."""

    data_unit_id: str
    encoded: EncodedRecord
    revision: int
    # Revision read before planning; 0 when the record did not exist. The
    # store refuses the write if the row moved on meanwhile.
    previous_revision: int
    embeddings_to_upsert: Mapping[str, bytes]
    embeddings_to_delete: tuple[str, ...]
    index_added: tuple[IndexEntry, ...] = ()
    index_removed: tuple[IndexEntry, ...] = ()


@dataclass
class BundlePlan:
    schema_version: int
    results: list[UpdateResult]
    writes: list[RecordWrite] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return any(r.outcome is Outcome.REJECTED for r in self.results)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)


class _Working(msgspec.Struct, gc=False):
    values: dict[str, object]
    revision: int
    encoded: EncodedRecord | None = None


def check_update(
    validator: CompiledValidator, update: MetadataUpdate, *, coerce_strings: bool
) -> tuple[dict[str, object], list[Problem]]:
    """The normalised patch and every problem of one update or record."""
    if update.checked:
        return update.values, list(update.decode_problems)
    patch, problems = validator.check(update.values, coerce_strings=coerce_strings)
    id_problem = data_unit_id_problem(update.data_unit_id)
    if id_problem or update.decode_problems:
        shown = shorten(update.data_unit_id)
        problems = [
            *update.decode_problems,
            *([Problem("", "data_unit_id", id_problem, shown)] if id_problem else []),
            *problems,
        ]
    return patch, problems


def checked(
    validator: CompiledValidator, update: MetadataUpdate, *, coerce_strings: bool
) -> MetadataUpdate:
    """`update` checked against `validator`: normalised values and every problem."""
    if update.checked:
        return update
    patch, problems = check_update(validator, update, coerce_strings=coerce_strings)
    return MetadataUpdate(update.data_unit_id, patch, update.mode, tuple(problems), True)


def plan_bundle(
    validator: CompiledValidator,
    updates: Sequence[MetadataUpdate],
    existing: Mapping[str, StoredRecord],
    *,
    partial: bool,
    coerce_strings: bool = False,
) -> BundlePlan:
    """Validate and apply `updates` in order over `existing`.

    Updates to one data unit chain: each sees the result of the previous one.
    Unless `partial`, one rejected update turns every other result into
    NOT_APPLIED and the plan has no writes.
    """
    working = {duid: _Working(rec.values, rec.revision) for duid, rec in existing.items()}
    hidden, required = validator.hidden_keys, validator.required
    results: list[UpdateResult] = []
    # The loop runs once per update of every bundle: locals instead of globals and
    # attribute lookups, and the checks of a checked update read directly.
    append, find, encode = results.append, working.get, encode_record
    applied, limit = Outcome.APPLIED, MAX_RECORD_BYTES
    for index, update in enumerate(updates):
        duid = update.data_unit_id
        if update.checked:
            patch, problems = update.values, update.decode_problems
        else:
            patch, found = check_update(validator, update, coerce_strings=coerce_strings)
            problems = tuple(found)
        current = find(duid)
        if required:
            values_now = None if current is None else current.values
            lacking = missing_required(required, values_now, patch, update.mode, problems)
            problems = (*problems, *lacking) if lacking else problems
        if problems:
            # The size too, of the record with the update's valid values: if even
            # that is over the limit, fixing the other problems will not be enough.
            size = record_size_problem(encode(_next(current, patch, update, hidden)).size)
            append(UpdateResult(index, duid, Outcome.REJECTED,
                                problems=(*problems, size) if size else problems))  # fmt: skip
            continue
        if current is None:  # a new record: whatever the mode, its non-null values
            values = patch if None not in patch.values() else without_nulls(patch)
            revision = 1
        else:
            values = apply_update(current.values, patch, update.mode, hidden)
            if values == current.values:
                append(UpdateResult(index, duid, Outcome.UNCHANGED, current.revision))
                continue
            revision = current.revision + 1
        encoded = encode(values)
        if encoded.size > limit:
            size_problem = record_size_problem(encoded.size)
            assert size_problem is not None
            append(UpdateResult(index, duid, Outcome.REJECTED, problems=(size_problem,)))
            continue
        working[duid] = _Working(values, revision, encoded)
        append(UpdateResult(index, duid, applied, revision))

    plan = BundlePlan(validator.version, results)
    if plan.rejected and not partial:
        plan.results = [
            r
            if r.outcome is Outcome.REJECTED
            else UpdateResult(r.index, r.data_unit_id, Outcome.NOT_APPLIED)
            for r in results
        ]
        return plan
    indexed = validator.indexed
    before = existing.get
    plan.writes = [
        _record_write(duid, state, before(duid), indexed)
        for duid, state in working.items()
        if state.encoded is not None
    ]
    return plan


def _next(
    current: _Working | None,
    patch: dict[str, object],
    update: MetadataUpdate,
    hidden: frozenset[str],
) -> dict[str, object]:
    """The record's values after `patch`."""
    if current is None:  # a new record: whatever the mode, its non-null values
        return patch if None not in patch.values() else without_nulls(patch)
    return apply_update(current.values, patch, update.mode, hidden)


def without_nulls(values: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}


def _record_write(
    duid: str,
    state: _Working,
    before: StoredRecord | None,
    indexed: Mapping[str, KeyDefinition],
) -> RecordWrite:
    assert state.encoded is not None
    new_embeddings = state.encoded.embeddings
    if before is None:  # the common bulk-load case: nothing to diff against
        added = tuple(index_entries(state.values, indexed)) if indexed else ()
        return RecordWrite(duid, state.encoded, state.revision, 0, new_embeddings, (), added, ())
    old_embeddings = {k: v for k, v in before.values.items() if type(v) is array}
    upsert = {
        k: raw
        for k, raw in new_embeddings.items()
        if k not in old_embeddings or old_embeddings[k] != state.values[k]
    }
    deleted = tuple(k for k in old_embeddings if k not in new_embeddings)
    old_entries = index_entries(before.values, indexed)
    new_entries = index_entries(state.values, indexed)
    return RecordWrite(
        duid,
        state.encoded,
        state.revision,
        before.revision,
        upsert,
        deleted,
        tuple(new_entries - old_entries),
        tuple(old_entries - new_entries),
    )
