"""Metadata use cases: validate, apply bundles (atomic, idempotent), read and delete."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta

import msgspec
from sqlalchemy.orm import Session

from ..domain.access import ANONYMOUS, Caller
from ..domain.bundle import (
    MAX_BUNDLE_UPDATES,
    MetadataUpdate,
    Outcome,
    RequiredKeyChain,
    StoredRecord,
    UpdateResult,
    check_update,
    checked,
    needs_stored_record,
    plan_bundle,
    without_nulls,
)
from ..domain.errors import (
    CallAbandoned,
    IdempotencyKeyReused,
    InvalidArgument,
    SchemaNotFound,
)
from ..domain.json_records import decode_records
from ..domain.names import data_unit_id_problem, shorten
from ..domain.reports import bundle_rejection
from ..domain.schema import KeyType
from ..domain.validator import CompiledValidator, Problem, encode_record, record_size_problem
from ..storage import audit, idempotency, records, schemas
from ..storage.database import Database
from ..storage.schemas import Lock, SchemaRef
from .cache import SchemaCache
from .common import (
    Clock,
    records_that_fit,
    require_at_most,
    require_schema_name,
    resolve_version,
    retry_on_conflict,
    utc_now,
)
from .telemetry import (
    NO_TELEMETRY,
    STAGE_COMMIT,
    STAGE_DECODE,
    STAGE_LOAD,
    STAGE_LOCK,
    STAGE_PLAN,
    STAGE_WRITE,
    Telemetry,
)

MAX_IDS_PER_REQUEST = 1000
MAX_IDEMPOTENCY_KEY_LENGTH = 256
IDEMPOTENCY_PURGE_INTERVAL_S = 600.0


@dataclass(frozen=True)
class BundleRequest:
    schema: str
    # One of the two forms: decoded typed updates, or the JSON record form's bytes.
    updates: Sequence[MetadataUpdate] = ()
    updates_json: bytes = b""
    partial: bool = False
    idempotency_key: str = ""
    # Digest of the request's content (without the key), computed by the caller.
    request_hash: str = ""
    coerce_strings: bool = False
    # Asked just before the commit: False when the caller is gone (cancelled, past its
    # deadline, or cut off by shutdown), and the bundle is then rolled back.
    still_wanted: Callable[[], bool] = lambda: True
    # Seconds left before the caller's deadline (grpc's time_remaining), or None for
    # a caller without one. A bundle that would likely outlive it is rolled back too.
    time_remaining: Callable[[], float] | None = None


@dataclass(frozen=True)
class BundleOutcome:
    schema_version: int
    results: list[UpdateResult]
    replayed: bool = False
    # time.perf_counter() at the last look at the deadline before the commit, for the
    # caller to time the commit and its answer (`MetadataService.commit_answered`).
    commit_started: float | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    def to_json(self) -> str:
        return _STORED.encode(_StoredOutcome(self.schema_version, self.results)).decode()

    @classmethod
    def from_json(cls, text: str, *, replayed: bool) -> BundleOutcome:
        stored = _STORED_DECODER.decode(text)
        return cls(stored.v, stored.r, replayed)


class _StoredOutcome(msgspec.Struct, gc=False):
    """How a bundle's outcome is kept with its idempotency key:
    {"v": version, "r": [[index, data_unit_id, outcome, revision, [[key, rule, message,
    shown], ...]], ...]} (the results and problems are array-like structs)."""

    v: int
    r: list[UpdateResult]


_STORED = msgspec.json.Encoder()
_STORED_DECODER = msgspec.json.Decoder(_StoredOutcome)


@dataclass(frozen=True)
class ValidationReport:
    schema_version: int
    invalid: list[tuple[int, str, list[Problem]]] = field(default_factory=list)
    valid_count: int = 0


def require_one_form(typed: int, json_form: bytes, field: str) -> None:
    """A request carries its records typed or as JSON, never both."""
    if typed and json_form:
        raise InvalidArgument(
            f"the request sets both {field} and {field}_json; send one form of the records"
        )


def possible_ids(data_unit_ids: Sequence[str]) -> list[str]:
    """The ids that a record could have; the others are simply missing."""
    return [d for d in data_unit_ids if data_unit_id_problem(d) is None]


class CommitCost:
    """A running estimate of how long a bundle takes from its last deadline check to its
    answer leaving the server: the commit, then building and sending the response.

    The smoothed mean and mean deviation of TCP's retransmission timer (RFC 6298):
    `bound()` is the mean plus four deviations, which few samples exceed, and a slow
    commit raises it at once while fast ones lower it gradually.
    """

    def __init__(self, initial: float = 0.010) -> None:
        self._mean = initial
        self._deviation = initial / 2
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._deviation += (abs(seconds - self._mean) - self._deviation) / 4
            self._mean += (seconds - self._mean) / 8

    def bound(self) -> float:
        with self._lock:
            return self._mean + 4 * self._deviation


# The caller's deadline can come before the server's: gRPC rounds the timeout it sends
# up, by as much as 1% (measured: 30 s arrives as 30.1 s), and the answer takes time
# to travel and to be read. A commit must fit before the server's deadline less this.
DEADLINE_ROUNDING = 0.01
ANSWER_MARGIN_S = 0.002


class _CommitWouldOutliveCall(CallAbandoned):
    """Rolled back because the commit and its answer would likely end past the deadline."""


class MetadataService:
    def __init__(
        self,
        db: Database,
        cache: SchemaCache,
        clock: Clock = utc_now,
        idempotency_ttl: timedelta = timedelta(hours=24),
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self.db = db
        self.cache = cache
        self.clock = clock
        self.idempotency_ttl = idempotency_ttl
        self.telemetry = telemetry
        self._next_purge = 0.0
        self._purge_lock = threading.Lock()
        self.commit_cost = CommitCost()

    def _schema(
        self, session: Session, name: str, *, lock: Lock = None, version: int = 0
    ) -> tuple[SchemaRef, CompiledValidator]:
        require_schema_name(name)
        ref = schemas.get_ref(session, name, lock=lock)
        if ref is None or ref.latest_version == 0:
            raise SchemaNotFound(name)
        return ref, self.cache.validator(session, ref, resolve_version(ref, version))

    def value_kinds(self, schema: str) -> Mapping[str, type]:
        """Decoding hints: the Python type of each scalar key's values in `schema`.

        From the newest version this server has cached, which may be none or behind
        the database: hints only make decoding faster, never change its result.
        """
        validator = self.cache.latest_known(schema)
        return validator.value_kinds if validator is not None else {}

    def decode_json(
        self, validator: CompiledValidator, raw: bytes, field: str, *, coerce_strings: bool
    ) -> list[MetadataUpdate]:
        """The updates of a JSON record form: checked ones from the compiled fast path
        when it accepts them all, otherwise decoded for the full validator."""
        if not coerce_strings:
            decoder = self.cache.fast_decoder(validator)
            if decoder is not None:
                fast = decoder.decode(raw)
                if fast is not None:
                    return fast
        return decode_records(raw, validator.state, field)

    def validate(
        self,
        schema: str,
        records_to_check: Sequence[MetadataUpdate],
        *,
        records_json: bytes = b"",
        version: int = 0,
        coerce_strings: bool = False,
    ) -> ValidationReport:
        require_one_form(len(records_to_check), records_json, "records")
        require_at_most(len(records_to_check), MAX_BUNDLE_UPDATES, "records")
        _, validator = self.cache.read(self.db, schema, version)
        if records_json:
            records_to_check = self.decode_json(
                validator, records_json, "records_json", coerce_strings=coerce_strings
            )
            require_at_most(len(records_to_check), MAX_BUNDLE_UPDATES, "records")
        invalid: list[tuple[int, str, list[Problem]]] = []
        valid = 0
        checks = [
            check_update(validator, r, coerce_strings=coerce_strings) for r in records_to_check
        ]
        chain = self._required_chain(schema, validator, records_to_check, checks)
        for index, (record, (patch, problems)) in enumerate(zip(records_to_check, checks,
                                                                strict=True)):  # fmt: skip
            if chain is not None:
                problems += chain.check(record.data_unit_id, patch, record.mode, problems)
            # With other problems, the size of the valid values: a lower bound.
            size_problem = record_size_problem(encode_record(without_nulls(patch)).size)
            if size_problem:
                problems = [*problems, size_problem]
            if problems:
                invalid.append((index, record.data_unit_id, problems))
            else:
                valid += 1
        self.telemetry.validated(invalid)
        return ValidationReport(validator.version, invalid, valid)

    def _required_chain(
        self,
        schema: str,
        validator: CompiledValidator,
        to_check: Sequence[MetadataUpdate],
        checks: Sequence[tuple[dict[str, object], list[Problem]]],
    ) -> RequiredKeyChain | None:
        """The `required` rule for ValidateMetadata's records, with the stored records it
        depends on (read, never written); None for a schema without required keys."""
        required = validator.required
        if not required:
            return None
        wanted = [
            record.data_unit_id
            for record, (patch, _) in zip(to_check, checks, strict=True)
            if needs_stored_record(required, patch, record.mode)
        ]
        stored: dict[str, dict[str, object]] = {}
        ids = possible_ids(list(dict.fromkeys(wanted)))
        if ids:
            embedded = [k for k in required if validator.state.keys[k].type is KeyType.EMBEDDING]
            with self.db.session() as session:
                ref = schemas.get_ref(session, schema)
                if ref is None:  # pragma: no cover - schemas are never deleted
                    raise SchemaNotFound(schema)
                stored = records.load_scalars(session, ref.id, ids)
                if embedded:
                    for duid, keys in records.embedding_keys_of(session, ref.id, ids).items():
                        stored[duid] = {**stored[duid], **dict.fromkeys(keys, True)}
        return RequiredKeyChain(required, stored)

    def apply_bundle(self, request: BundleRequest) -> BundleOutcome:
        require_one_form(len(request.updates), request.updates_json, "updates")
        require_at_most(len(request.updates), MAX_BUNDLE_UPDATES, "updates")
        key = request.idempotency_key
        if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or any(ord(c) < 32 or c == "\x7f" for c in key):
            raise InvalidArgument(
                f"idempotency_key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters "
                f"without control characters; got {shorten(key)}"
            )
        timeout = request.time_remaining() if request.time_remaining else None
        self._purge_expired_keys()
        early = self._check_early(request)
        try:
            outcome = retry_on_conflict(lambda: self._apply_once(request, early, timeout))
        except _CommitWouldOutliveCall:
            # Rolled back with the deadline still running. Answering now would tell the
            # caller CANCELLED before its own clock ran out; waiting keeps the status it
            # would otherwise have seen, DEADLINE_EXCEEDED, which clients retry.
            _wait_out(request, timeout)
            raise
        self.telemetry.bundle_applied(request.schema, outcome.results, outcome.replayed)
        return outcome

    def commit_answered(self, outcome: BundleOutcome) -> None:
        """The call that committed `outcome` has ended: time its commit and answer."""
        if outcome.commit_started is not None:
            self.commit_cost.observe(time.perf_counter() - outcome.commit_started)

    def _refuse_late_commit(self, request: BundleRequest, timeout: float | None) -> float:
        """Raise CallAbandoned (the transaction rolls back) unless the caller is still
        there and the commit and its answer fit before its deadline; else the time."""
        if not request.still_wanted():
            raise CallAbandoned(
                "the call was cancelled or ran out of time before the bundle committed; "
                "nothing was written"
            )
        if request.time_remaining is not None and timeout is not None:
            needed = self.commit_cost.bound() + DEADLINE_ROUNDING * timeout + ANSWER_MARGIN_S
            remaining = request.time_remaining()
            if remaining < needed:
                raise _CommitWouldOutliveCall(
                    f"the bundle would likely commit after the call's deadline ({remaining:.3f} "
                    f"s left, a commit and its answer take up to {needed:.3f} s here); "
                    "nothing was written"
                )
        return time.perf_counter()

    def _checked_updates(
        self, validator: CompiledValidator, request: BundleRequest
    ) -> list[MetadataUpdate]:
        """The request's updates decoded and checked against `validator`'s version."""
        coerce = request.coerce_strings
        updates = request.updates
        with self.telemetry.stage(STAGE_DECODE, len(updates) or None):
            if request.updates_json:
                updates = self.decode_json(
                    validator, request.updates_json, "updates_json", coerce_strings=coerce
                )
                require_at_most(len(updates), MAX_BUNDLE_UPDATES, "updates")
                if updates and updates[0].checked:  # the fast path checked all of them
                    return updates
            return [checked(validator, u, coerce_strings=coerce) for u in updates]

    def _check_early(self, request: BundleRequest) -> tuple[int, list[MetadataUpdate]] | None:
        """Decode and check before the write transaction, against the newest version this
        server knows, so that the write lock is not held meanwhile. The transaction uses
        the result only if that is still the latest version. What this raises (malformed
        JSON, too many updates) does not depend on the version."""
        validator = self.cache.latest_known(request.schema)
        if validator is None:
            return None
        return validator.version, self._checked_updates(validator, request)

    def _apply_once(
        self,
        request: BundleRequest,
        early: tuple[int, list[MetadataUpdate]] | None,
        timeout: float | None,
    ) -> BundleOutcome:
        stage = self.telemetry.stage
        # The commit stage opens inside the transaction and closes once it has committed.
        with ExitStack() as committing, self.db.session(write=True) as session:
            # A shared lock on the schema row keeps schema changes (which take
            # an exclusive one) from committing in the middle of the bundle.
            with stage(STAGE_LOCK):
                ref, validator = self._schema(session, request.schema, lock="share")
            if early is not None and early[0] == validator.version:
                updates = early[1]
            else:
                updates = self._checked_updates(validator, request)
            now = self.clock()
            not_before = now - self.idempotency_ttl
            key = request.idempotency_key
            with stage(STAGE_LOAD, len(updates)):
                if key:
                    stored = idempotency.find(session, ref.id, key, not_before)
                    if stored is not None:
                        if stored.request_hash != request.request_hash:
                            raise IdempotencyKeyReused(key)
                        return BundleOutcome.from_json(stored.response, replayed=True)
                existing = records.load_records(session, ref.id, (u.data_unit_id for u in updates))
            with stage(STAGE_PLAN, len(updates)):
                plan = plan_bundle(
                    validator,
                    updates,
                    existing,
                    partial=request.partial,
                    coerce_strings=request.coerce_strings,
                )
            if plan.rejected and not request.partial:
                self.telemetry.bundle_rejected(request.schema, plan.results)
                raise bundle_rejection(plan)
            results = plan.results
            with stage(STAGE_WRITE, len(plan.writes)):
                records.write_records(session, ref.id, plan.writes, validator.version, now)
                if key:
                    idempotency.store(
                        session,
                        ref.id,
                        key,
                        request.request_hash,
                        BundleOutcome(validator.version, results).to_json(),
                        now=now,
                        not_before=not_before,
                    )
            started = self._refuse_late_commit(request, timeout)  # raising rolls back
            committing.enter_context(stage(STAGE_COMMIT))
        return BundleOutcome(validator.version, results, commit_started=started)

    def get_metadata(
        self, schema: str, data_unit_ids: Sequence[str]
    ) -> tuple[list[StoredRecord], list[str], list[str]]:
        """Visible records in request order, the ids that have none, and the ids left
        unread because the response reached its size budget."""
        require_at_most(len(data_unit_ids), MAX_IDS_PER_REQUEST, "data_unit_ids")
        with self.db.session() as session:
            ref, validator = self._schema(session, schema)
            found = records.get_records(session, ref.id, possible_ids(data_unit_ids))
        for record in found:
            record.values = validator.visible(record.values)
        requested = list(dict.fromkeys(data_unit_ids))
        unread: list[str] = []
        fit = records_that_fit(found)
        if fit < len(found):
            cut = requested.index(found[fit].data_unit_id)
            found, requested, unread = found[:fit], requested[:cut], requested[cut:]
        present = {r.data_unit_id for r in found}
        return found, [d for d in requested if d not in present], unread

    def delete_metadata(
        self, schema: str, data_unit_ids: Sequence[str], caller: Caller | None = None
    ) -> tuple[int, list[str]]:
        require_at_most(len(data_unit_ids), MAX_IDS_PER_REQUEST, "data_unit_ids")
        who = caller or Caller(ANONYMOUS, "", "DeleteMetadata")

        def delete() -> tuple[int, list[str]]:
            with self.db.session(write=True) as session:
                ref, validator = self._schema(session, schema, lock="share")
                deleted = records.delete_records(
                    session, ref.id, possible_ids(data_unit_ids), validator.indexed
                )
                audit.record(session, who, schema, deletion_summary(data_unit_ids, deleted),
                             "applied", self.clock())  # fmt: skip
            missing = [d for d in dict.fromkeys(data_unit_ids) if d not in deleted]
            return len(deleted), missing

        return retry_on_conflict(delete)

    def _purge_expired_keys(self) -> None:
        """Forget idempotency keys past their time to live, at most every few minutes."""
        now = time.monotonic()
        with self._purge_lock:
            if now < self._next_purge:
                return
            self._next_purge = now + IDEMPOTENCY_PURGE_INTERVAL_S
        with self.db.session(write=True) as session:
            idempotency.purge_expired(session, self.clock() - self.idempotency_ttl)


def _wait_out(request: BundleRequest, timeout: float | None) -> None:
    """Sleep until the caller has gone: at its deadline, which gRPC ends at the server
    as well, and never much past the server's own view of it."""
    assert request.time_remaining is not None
    assert timeout is not None
    end = time.monotonic() + request.time_remaining() + DEADLINE_ROUNDING * timeout + 0.1
    while request.still_wanted() and time.monotonic() < end:
        time.sleep(0.002)


def deletion_summary(requested: Sequence[str], deleted: set[str]) -> str:
    """An audit event's summary of DeleteMetadata: the counts and the first ids deleted."""
    asked = len(dict.fromkeys(requested))
    shown = ", ".join(shorten(d, 40) for d in sorted(deleted)[:5])
    more = f" and {len(deleted) - 5} more" if len(deleted) > 5 else ""
    listing = f": {shown}{more}" if deleted else ""
    return f"{len(deleted)} of {asked} requested record(s) deleted{listing}"
