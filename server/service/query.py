"""Query use cases: QueryMetadata, CountMetadata and UpdateByFilter.

Plans, cheapest first:
- candidates: an indexed comparison of the filter (the one with the fewest index
  entries) bounds the matches; at most DRIVER_LIMIT of them are loaded, checked
  against the whole filter and sorted in memory;
- index walk: with order_by on an indexed key, walk that key's index in order and
  check each record until the page is full;
- scan: read the schema's records in data_unit_id order and check each.

Every plan orders by the same keys (for an order key: its index value, then
data_unit_id; records without the key last, by data_unit_id), so a page token
continues correctly whichever plan the next page uses. Tokens hold the last
position, which keeps paging free of skips and repeats while records are inserted.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ..domain.access import ANONYMOUS, Caller
from ..domain.bundle import MetadataUpdate, Outcome, StoredRecord, check_update
from ..domain.bundle import plan_bundle as plan_updates
from ..domain.errors import InvalidArgument, InvalidPageToken, TooManyMatches
from ..domain.names import data_unit_id_problem, is_utf8
from ..domain.query.checker import (
    Among,
    Checked,
    CheckedOrdering,
    Compare,
    Contains,
    Present,
    compile_filter,
    compile_ordering,
)
from ..domain.query.evaluate import matches, references_embeddings
from ..domain.query.facets import DEFAULT_FACETS, MAX_FACETS, facet_key, prefix_end, whole_in_index
from ..domain.query.index import (
    INDEX_PREFIX,
    Driver,
    IndexRange,
    IndexTable,
    IndexValue,
    candidate_drivers,
    conjuncts,
    index_value,
    key_range,
    single_exact_driver,
    table_for,
)
from ..domain.reports import filter_update_rejection, patch_rejection
from ..domain.schema import KeyDefinition, KeyType
from ..domain.validator import MAX_RECORD_BYTES, CompiledValidator
from ..storage import audit, index, records
from .common import (
    decode_page_token,
    encode_page_token,
    page_size,
    records_that_fit,
    retry_on_conflict,
)
from .metadata import MetadataService

DRIVER_LIMIT = 5000
COUNT_CANDIDATE_LIMIT = 200_000
CHUNK = 500
MAX_UPDATE_BY_FILTER = 50_000

# A record's place in the order: (phase, value, data_unit_id). Phase 0 holds
# records with the order key (value = the number as in the index, or the whole
# string), phase 1 those without.
Position = tuple[int, IndexValue | None, str]


@dataclass(frozen=True)
class QueryPage:
    records: list[StoredRecord]
    next_token: str
    schema_version: int


@dataclass(frozen=True)
class FilterUpdate:
    matched: int
    updated: int
    schema_version: int


@dataclass(frozen=True)
class ValueFacets:
    """The most frequent values of one key, with their record counts."""

    values: list[tuple[object, int]]
    more: bool
    schema_version: int


def _indexed_counts(session: Session, schema_id: int, definition: KeyDefinition, prefix: str,
                    limit: int) -> list[tuple[object, int]] | None:  # fmt: skip
    """Counts read from the key's index alone (one statement, so one snapshot), or None
    when they cannot be trusted: then the records are counted.

    Values longer than INDEX_PREFIX are entries cut to it, and equal cut entries of
    different values are counted as one. Such a group counts at least as much as each of
    its values, which also sort after its cut text; so when no returned entry is that
    long, no such value belongs among the returned ones either, and `more` holds too.
    A prefix longer than the entries keep cannot be matched against them at all.
    """
    whole = whole_in_index(definition)
    if not whole and len(prefix) > INDEX_PREFIX:
        return None
    low, high = (prefix, prefix_end(prefix)) if prefix else (None, None)
    counted = index.value_counts(session, schema_id, table_for(definition), definition.key,
                                 low=low, high=high, limit=limit)  # fmt: skip
    if not whole and any(len(str(value)) >= INDEX_PREFIX for value, _ in counted):
        return None
    if definition.type is KeyType.BOOLEAN:
        return [(value == 1.0, n) for value, n in counted]
    return list(counted)


class _Order:
    """The total order of one query, and comparisons against a page position."""

    def __init__(self, ordering: CheckedOrdering | None) -> None:
        self.key = ordering.key if ordering else None
        self.descending = bool(ordering and ordering.descending)

    def position(self, duid: str, values: Mapping[str, object]) -> Position:
        if self.key is None:
            return (1, None, duid)
        value = values.get(self.key)
        if value is None:
            return (1, None, duid)
        # The whole string: index entries keep only a prefix (see _walk).
        return (0, value if type(value) is str else index_value(value), duid)

    def sort_key(self, position: Position) -> Any:
        phase, value, duid = position
        if phase == 1 or not self.descending:
            return position
        return (0, _Reversed(value), _Reversed(duid))

    def after(self, position: Position, cursor: Position | None) -> bool:
        return cursor is None or self.sort_key(position) > self.sort_key(cursor)


class _Reversed:
    """Inverts comparisons, for descending sort keys."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return bool(self.value > other.value)

    def __gt__(self, other: _Reversed) -> bool:
        return bool(self.value < other.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and bool(self.value == other.value)

    def __hash__(self) -> int:  # pragma: no cover - never hashed
        return hash(self.value)


class _Query:
    """One compiled filter against one schema inside one transaction."""

    def __init__(self, session: Session, schema_id: int, validator: CompiledValidator,
                 checked: Checked | None) -> None:  # fmt: skip
        self.session = session
        self.schema_id = schema_id
        self.validator = validator
        self.checked = checked
        self.needs_embeddings = references_embeddings(checked)

    def keep_matching(self, rows: Sequence[tuple[str, dict[str, object]]]
                      ) -> list[tuple[str, dict[str, object]]]:  # fmt: skip
        present: Mapping[str, set[str]] = {}
        if self.needs_embeddings:
            present = records.embedding_keys_of(self.session, self.schema_id, [d for d, _ in rows])
        return [
            (duid, values) for duid, values in rows
            if matches(self.checked, values, present.get(duid, ()))
        ]  # fmt: skip

    def load(self, ids: Sequence[str]) -> list[tuple[str, dict[str, object]]]:
        found = records.load_scalars(self.session, self.schema_id, ids)
        return [(duid, found[duid]) for duid in ids if duid in found]

    def best_driver(self, limit: int) -> tuple[Driver, int] | None:
        """The indexed conjunct with the fewest entries, if it has at most `limit`."""
        best: tuple[Driver, int] | None = None
        for driver in candidate_drivers(self.checked, self.validator.indexed):
            size = index.count_entries(self.session, self.schema_id, driver.ranges, limit + 1)
            if size <= limit and (best is None or size < best[1]):
                best = (driver, size)
        return best

    def scan(self, after: str | None = None) -> Iterator[tuple[str, dict[str, object]]]:
        """Matching records in data_unit_id order."""
        while True:
            rows = records.scan_in_id_order(self.session, self.schema_id, after, CHUNK)
            yield from self.keep_matching(rows)
            if len(rows) < CHUNK:
                return
            after = rows[-1][0]

    def candidates(self, driver: Driver) -> Iterator[tuple[str, dict[str, object]]]:
        """Matching records among the driver's index entries, in data_unit_id order."""
        ids = sorted(index.ids_in_ranges(self.session, self.schema_id, driver.ranges))
        for start in range(0, len(ids), CHUNK):
            yield from self.keep_matching(self.load(ids[start : start + CHUNK]))

    def matching(self, limit: int) -> Iterator[tuple[str, dict[str, object]]]:
        """Every match, through an index when one bounds them to at most `limit`."""
        best = self.best_driver(limit)
        return self.candidates(best[0]) if best else self.scan()


class QueryService:
    def __init__(self, metadata: MetadataService) -> None:
        self.metadata = metadata
        self.db = metadata.db

    def _open(self, session: Session, schema: str, filter_text: str
              ) -> tuple[_Query, CompiledValidator]:  # fmt: skip
        ref, validator = self.metadata._schema(session, schema)
        checked = compile_filter(validator.state, filter_text)
        return _Query(session, ref.id, validator, checked), validator

    # --- QueryMetadata --------------------------------------------------------------

    def query(self, schema: str, filter_text: str, order_by: str, requested_size: int,
              token: str) -> QueryPage:  # fmt: skip
        size = page_size(requested_size)
        digest = hashlib.sha256(f"{schema}\0{filter_text}\0{order_by}".encode()).hexdigest()[:16]
        cursor = _decode_cursor(token, digest)
        with self.db.session() as session:
            query, validator = self._open(session, schema, filter_text)
            ordering = compile_ordering(validator.state, order_by)
            _check_position(cursor, ordering)
            order = _Order(ordering)
            found = self._page(query, ordering, order, cursor, size + 1)
            page = found[:size]
            full = records.get_records(session, query.schema_id, [p[2] for p in page])
        for record in full:
            record.values = validator.visible(record.values)
        more = len(found) > size
        fit = records_that_fit(full)
        if fit < len(full):  # the page ends early, at its size budget
            page = page[: [p[2] for p in page].index(full[fit].data_unit_id)]
            full, more = full[:fit], True
        next_token = ""
        if more:
            next_token = encode_page_token("query", {"q": digest, "p": list(page[-1])})
        return QueryPage(full, next_token, validator.version)

    def _page(self, query: _Query, ordering: CheckedOrdering | None, order: _Order,
              cursor: Position | None, wanted: int) -> list[Position]:  # fmt: skip
        best = query.best_driver(DRIVER_LIMIT)
        if best is None and ordering is not None and ordering.key in query.validator.indexed:
            bounds = key_range(query.checked, ordering.key, query.validator.indexed)
            walked = self._walk(query, ordering, order, cursor, wanted, bounds)
            if walked is not None:
                return walked
        if best is not None:
            rows: Iterator[tuple[str, dict[str, object]]] = query.candidates(best[0])
        else:
            rows = query.scan(cursor[2] if ordering is None and cursor else None)
        positions = (order.position(duid, values) for duid, values in rows)
        after = (p for p in positions if order.after(p, cursor))
        if ordering is None:
            return list(_take(after, wanted))  # already in data_unit_id order
        return heapq.nsmallest(wanted, after, key=order.sort_key)

    def _walk(self, query: _Query, ordering: CheckedOrdering, order: _Order,
              cursor: Position | None, wanted: int, bounds: IndexRange | None
              ) -> list[Position] | None:  # fmt: skip
        """Follow the order key's index within `bounds`, then the records lacking the key.

        None when a string as long as the index prefix is met (at the cursor or in
        the index): entries cut to the prefix cannot order such values, so the
        caller sorts the matching records themselves.
        """
        found: list[Position] = []
        if cursor and type(cursor[1]) is str and len(cursor[1]) >= INDEX_PREFIX:
            return None
        if cursor is None or cursor[0] == 0:
            after = (cursor[1], cursor[2]) if cursor and cursor[1] is not None else None
            kind = table_for(ordering.definition)
            # Read just enough entries when most match; grow when matches are sparse.
            size = min(CHUNK, max(wanted, 8))
            while len(found) < wanted:
                entries = index.walk(
                    query.session, query.schema_id, kind, ordering.key,
                    descending=ordering.descending, after=after, bounds=bounds, limit=size,
                )  # fmt: skip
                if any(type(v) is str and len(v) >= INDEX_PREFIX for v, _ in entries):
                    return None
                loaded = dict(query.keep_matching(query.load([d for _, d in entries])))
                found += [(0, value, duid) for value, duid in entries if duid in loaded]
                if len(entries) < size:
                    break
                after = entries[-1]
                size = min(CHUNK, size * 4)
            cursor = None
        if len(found) >= wanted or _requires_key(query.checked, ordering.key):
            return found[:wanted]
        rest = query.scan(cursor[2] if cursor else None)
        lacking: Iterator[Position] = (
            (1, None, duid) for duid, values in rest if ordering.key not in values
        )
        tail = (p for p in lacking if order.after(p, cursor))
        return found + list(_take(tail, wanted - len(found)))

    # --- CountMetadata -----------------------------------------------------------------

    def count(self, schema: str, filter_text: str) -> tuple[int, int]:
        with self.db.session() as session:
            query, validator = self._open(session, schema, filter_text)
            if query.checked is None:
                return records.count_records(session, query.schema_id), validator.version
            exact = single_exact_driver(query.checked, validator.indexed)
            if exact is not None:
                total = index.count_entries(session, query.schema_id, exact.ranges)
                return total, validator.version
            total = sum(1 for _ in query.matching(COUNT_CANDIDATE_LIMIT))
            return total, validator.version

    # --- ListValues ------------------------------------------------------------------

    def list_values(self, schema: str, key: str, prefix: str, filter_text: str,
                    requested: int) -> ValueFacets:  # fmt: skip
        if requested < 0:
            raise InvalidArgument(f"limit must be 0..{MAX_FACETS}, got {requested}")
        limit = min(requested or DEFAULT_FACETS, MAX_FACETS)
        with self.db.session() as session:
            query, validator = self._open(session, schema, filter_text)
            definition = facet_key(validator.state, key, prefix)
            if query.checked is None and key in validator.indexed:
                counted = _indexed_counts(session, query.schema_id, definition, prefix, limit + 1)
                if counted is not None:
                    return ValueFacets(counted[:limit], len(counted) > limit, validator.version)
            counter: Counter[object] = Counter()
            for _, values in query.matching(COUNT_CANDIDATE_LIMIT):
                value = values.get(key)
                if value is not None and (not prefix or str(value).startswith(prefix)):
                    counter[value] += 1
            ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
            return ValueFacets(ranked[:limit], len(ranked) > limit, validator.version)

    # --- UpdateByFilter ----------------------------------------------------------------

    def update_by_filter(self, schema: str, filter_text: str, patch: MetadataUpdate, *,
                         validate_only: bool, coerce_strings: bool,
                         caller: Caller | None = None) -> FilterUpdate:  # fmt: skip
        if not filter_text.strip():
            raise InvalidArgument(
                "UpdateByFilter needs a filter; to update every record say so explicitly, "
                "for example with `some_key EXISTS`"
            )

        who = caller or Caller(ANONYMOUS, "", "UpdateByFilter")

        def run() -> FilterUpdate:
            with self.db.session(write=not validate_only) as session:
                return self._update(session, schema, filter_text, patch,
                                    validate_only=validate_only,
                                    coerce_strings=coerce_strings, caller=who)  # fmt: skip

        return retry_on_conflict(run)

    def _update(self, session: Session, schema: str, filter_text: str, patch: MetadataUpdate,
                *, validate_only: bool, coerce_strings: bool,
                caller: Caller) -> FilterUpdate:  # fmt: skip
        ref, validator = self.metadata._schema(session, schema, lock="share")
        _, problems = check_update(validator, patch, coerce_strings=coerce_strings)
        if problems:
            raise patch_rejection(problems)
        query = _Query(session, ref.id, validator, compile_filter(validator.state, filter_text))
        ids = [duid for duid, _ in _take(query.matching(MAX_UPDATE_BY_FILTER),
                                          MAX_UPDATE_BY_FILTER + 1)]  # fmt: skip
        if len(ids) > MAX_UPDATE_BY_FILTER:
            raise TooManyMatches(MAX_UPDATE_BY_FILTER)
        existing = records.load_records(session, ref.id, ids)
        # On PostgreSQL a bundle may have committed between the match and this read:
        # check the filter again on what was read. The writes are conditional on the
        # revisions read here, so a change after this read retries the whole call.
        loaded = [(duid, existing[duid].values) for duid in ids if duid in existing]
        still = {duid for duid, _ in query.keep_matching(loaded)}
        ids = [duid for duid in ids if duid in still]
        updates = [MetadataUpdate(duid, patch.values, patch.mode) for duid in ids]
        plan = plan_updates(validator, updates, existing, partial=False,
                            coerce_strings=coerce_strings)  # fmt: skip
        if plan.rejected:
            raise filter_update_rejection(plan)
        updated = plan.count(Outcome.APPLIED)
        if not validate_only:
            now = self.metadata.clock()
            records.write_records(session, ref.id, plan.writes, validator.version, now)
            summary = (f"filter {filter_text[:200]!r}, mode {patch.mode.value}: "
                       f"{len(ids)} matched, {updated} updated")  # fmt: skip
            audit.record(session, caller, schema, summary, "applied", now)
        return FilterUpdate(len(ids), 0 if validate_only else updated, validator.version)


# --- helpers -----------------------------------------------------------------------------


def _take(items: Iterator[Any], count: int) -> Iterator[Any]:
    for number, item in enumerate(items):
        if number >= count:
            return
        yield item


def _requires_key(checked: Checked | None, key: str) -> bool:
    """Whether every match must hold `key` (so records lacking it can be skipped)."""
    for part in conjuncts(checked):
        if isinstance(part, Compare | Among | Present | Contains) and part.key == key:
            return True
    return False


def _check_position(cursor: Position | None, ordering: CheckedOrdering | None) -> None:
    """A decoded position must be one this query could have issued (tokens are user input)."""
    if cursor is None:
        return
    phase, value, duid = cursor
    if phase == 1:
        fits = value is None
    elif ordering is None:
        fits = False
    elif table_for(ordering.definition) is IndexTable.NUMBER:
        fits = type(value) in (int, float) and _finite(value)
    else:
        fits = type(value) is str and len(value) <= MAX_RECORD_BYTES and is_utf8(value)
    if not (fits and is_utf8(duid)):
        raise InvalidPageToken(
            "page_token was not issued for this query; pass the next_page_token of the "
            "previous response"
        )


def _finite(number: Any) -> bool:
    try:
        return math.isfinite(float(number))
    except OverflowError:  # an int past the doubles
        return False


def _decode_cursor(token: str, digest: str) -> Position | None:
    data = decode_page_token(token, "query")
    if data is None:
        return None
    try:
        if data["q"] != digest:
            raise ValueError("token of another query")
        phase, value, duid = data["p"]
        if phase not in (0, 1) or not isinstance(duid, str) or data_unit_id_problem(duid):
            raise ValueError("bad position")
        if not (value is None or isinstance(value, float | int | str)) or "\x00" in str(value):
            raise ValueError("bad position")
        return (phase, value, duid)
    except (TypeError, KeyError, ValueError):
        raise InvalidPageToken(
            "page_token belongs to another query (schema, filter and order_by must not change "
            "between pages)"
        ) from None
