"""Stream a metadata source through validation or a bundle, writing rejects as they happen.

Memory stays flat whatever the file size: records are read one at a time, at most two
requests (1000 records each: one in flight, one being queued) are held, and per-update
results are not accumulated. JSONL metadata read with `pass_through` is sent as the
file's JSON bytes and decoded only for the rejects file.

An atomic apply (without `partial`) reads the source twice: a validation pass that
writes nothing, and the apply pass only if every record was valid. Each apply request
carries an idempotency key derived from the run (schema, mode, flags) and the request's
own content and position, so the same command run again after a crash or an interrupt
is answered from the server's record for every request already applied: nothing is
applied twice.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from ._bundle import Bundle
from ._bundle_results import ChunkResult
from ._client import Client
from ._errors import BundleError, DeadlineExceededError, UnavailableError, ValueConversionError
from ._progress import Progress
from ._results import Outcome, RecordReport, Violation
from ._source import SourceRecord
from ._transport import MAX_REQUEST_BYTES

PAGE = 1000
SHOWN_REJECTS = 5
MAX_RECORD_JSON = MAX_REQUEST_BYTES
"""A record whose JSON is longer than a request may be cannot be sent: a local reject.
(The server stores records of at most 256 KiB; it rejects smaller oversized ones.)"""

Records = Callable[[], Iterator[SourceRecord]]
"""Opens the source again from its start (an atomic apply reads it twice)."""


class RejectsFile:
    """Rejected records as JSONL, created on the first reject.

    Each line has the record's `line` (its row, or `file` for a sidecar), `data_unit_id`,
    `metadata`, `outcome`, every violation, and `source`: the line as the input had it.
    Fixed, the file applies as input (`data_unit_id` and `metadata` are read, the rest
    is ignored). A run without rejects removes the file a previous run left.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.examples: list[str] = []
        self._stream: IO[str] | None = None

    def add(self, record: SourceRecord, outcome: str, violations: Sequence[Violation]) -> None:
        if self._stream is None:
            self._stream = self.path.open("w", encoding="utf-8")
        entries = [v.to_dict() for v in violations]
        if record.error:
            entries.append({"rule": "line", "description": record.error})
        line: dict[str, object] = {"line": record.line}
        if record.origin:
            line["file"] = record.origin
        line.update(
            data_unit_id=record.data_unit_id,
            metadata=_metadata_of(record),
            outcome=outcome,
            violations=entries,
        )
        if record.text and len(record.text) <= MAX_RECORD_JSON:
            line["source"] = record.text
        text = json.dumps(line, ensure_ascii=False, default=str)
        try:
            self._stream.write(text + "\n")
        except UnicodeEncodeError:  # a lone surrogate read from JSON: keep it escaped
            self._stream.write(json.dumps(line, default=str) + "\n")
        self.count += 1
        if len(self.examples) < SHOWN_REJECTS:
            first = entries[0]["description"] if entries else outcome
            self.examples.append(f"{record.place}: {first}")

    def __enter__(self) -> RejectsFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            self._stream.close()
        elif exc_type is None and self.path.is_file():
            self.path.unlink()  # a previous run's rejects: this one has none


def _metadata_of(record: SourceRecord) -> object:
    if record.size > MAX_RECORD_JSON:
        return {}  # the record is the reason; `source` is left out for the same reason
    try:
        return record.decoded_metadata()
    except ValueError:
        return {}


@dataclass
class Summary:
    """What a run did, for the final report and the exit code."""

    counts: Counter[str] = field(default_factory=Counter)
    read: int = 0
    replayed: int = 0
    """Records of requests that an earlier run of the same command had applied."""
    stopped: str = ""
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        bad = ("rejected", "invalid", "not_applied", "not_sent", "unknown")
        return not self.stopped and not any(self.counts[k] for k in bad)

    def line(self, order: Iterable[str], elapsed: float) -> str:
        parts = ", ".join(f"{name.replace('_', ' ')} {self.counts[name]}" for name in order)
        if self.replayed:
            parts += f" ({self.replayed} of them applied by an earlier run of this command)"
        elapsed = max(elapsed, 1e-9)
        return f"{parts} ({self.read} records in {elapsed:.1f}s, {self.read / elapsed:,.0f}/s)"


def _local_reject(
    record: SourceRecord, error: str, key: str = "", rule: str = "value"
) -> Violation:
    return Violation("", 0, record.data_unit_id, key, rule, "", error)


def _too_large(record: SourceRecord) -> Violation | None:
    if record.size <= MAX_RECORD_JSON:
        return None
    return _local_reject(
        record,
        f"the record is {record.size:,} bytes of JSON, more than one request can carry "
        f"({MAX_RECORD_JSON:,}); the server stores records of at most 256 KiB",
        rule="size",
    )


def run_key(schema: str, mode: str, *, partial: bool, coerce: bool, flatten: bool) -> str:
    """What identifies a run besides its requests' content: the same command gives the
    same key, a different schema, mode or flag another."""
    text = json.dumps(["metareg-apply", schema, mode, partial, coerce, flatten])
    return hashlib.sha256(text.encode()).hexdigest()


def _request_key(run: str) -> Callable[[int, bytes], str]:
    def key(index: int, updates_json: bytes) -> str:
        digest = hashlib.sha256(f"{run}:{index}:".encode())
        digest.update(updates_json)
        return f"file-{digest.hexdigest()[:48]}"

    return key


def apply_records(
    client: Client,
    schema: str,
    records: Records,
    rejects: RejectsFile,
    progress: Callable[[str], Progress],
    *,
    mode: str,
    partial: bool,
    coerce_strings: bool,
    flatten_nested: bool,
    run: str,
) -> Summary:
    """Apply every record; without `partial`, only if every record is valid."""
    if not partial:
        with progress("checking") as bar:
            checked = validate_records(
                client,
                schema,
                records(),
                rejects,
                bar,
                coerce_strings=coerce_strings,
                flatten_nested=flatten_nested,
                outcome="rejected",
            )
        if not checked.ok:
            summary = Summary(read=checked.read)
            summary.counts["rejected"] = checked.counts["invalid"]
            summary.counts["not_applied"] = checked.counts["valid"]
            summary.stopped = (
                f"{checked.counts['invalid']} of {checked.read} records are invalid, so nothing "
                "was applied (without --partial the file applies whole or not at all; "
                "--partial applies the valid records)"
            )
            return summary
    with progress("applying") as bar:
        return _apply_pass(
            client,
            schema,
            records(),
            rejects,
            bar,
            mode=mode,
            partial=partial,
            coerce_strings=coerce_strings,
            flatten_nested=flatten_nested,
            run=run,
        )


def _apply_pass(
    client: Client,
    schema: str,
    records: Iterator[SourceRecord],
    rejects: RejectsFile,
    bar: Progress,
    *,
    mode: str,
    partial: bool,
    coerce_strings: bool,
    flatten_nested: bool,
    run: str,
) -> Summary:
    summary = Summary()
    # bundle index -> record, for the requests queued and in flight
    window: dict[int, SourceRecord] = {}
    failed: list[SourceRecord] = []

    def on_chunk(chunk: ChunkResult) -> None:
        if chunk.error is not None:
            failed.extend(window[r.index] for r in chunk.results)
        if chunk.replayed:
            summary.replayed += chunk.applied + chunk.unchanged
        for result in chunk.results:
            source = window.pop(result.index)
            if result.outcome in (Outcome.REJECTED, Outcome.UNKNOWN):
                rejects.add(source, str(result.outcome), result.violations)
                bar.rejected(1)
        bar.update(chunk.size)

    bundle = Bundle(
        client._transport,
        schema,
        partial=partial,
        progress=on_chunk,
        coerce_strings=coerce_strings,
        flatten_nested=flatten_nested,
        keep_results=False,
        idempotency_key=_request_key(run),
    )
    index = 0
    try:
        with bundle:
            for record in records:
                summary.read += 1
                violation = _too_large(record)
                if record.error or violation is not None:
                    _reject_here(record, violation, summary, rejects, bar, partial)
                    continue
                window[index] = record
                try:
                    if record.metadata_json and not flatten_nested:
                        bundle._update_json(record.data_unit_id, record.metadata_json, mode)
                    else:
                        bundle.update(record.data_unit_id, record.decoded_metadata(), mode=mode)
                except ValueConversionError as error:
                    del window[index]
                    violation = _local_reject(record, error.message, error.key or "")
                    _reject_here(record, violation, summary, rejects, bar, partial)
                    continue
                index += 1
    except _Stop as stop:
        summary.stopped = (
            f"{stop}; stopped without sending the request it belongs to. The schema may "
            "have changed since the file was checked; requests before it stay applied"
        )
    except BundleError as error:
        summary.unreachable = isinstance(error.cause, UnavailableError | DeadlineExceededError)
        summary.stopped = _stop_message(error, failed, summary.unreachable)
    summary.counts.update({str(k): n for k, n in bundle.counts.items()})
    if summary.stopped:
        unread = sum(1 for _ in records)  # the rest of the source was never sent
        summary.read += unread
        summary.counts["not_sent"] += unread
    return summary


class _Stop(Exception):
    """A record the check passed but the apply pass cannot send (atomic runs stop)."""


def _reject_here(
    record: SourceRecord,
    violation: Violation | None,
    summary: Summary,
    rejects: RejectsFile,
    bar: Progress,
    partial: bool,
) -> None:
    summary.counts["rejected"] += 1
    rejects.add(record, "rejected", [violation] if violation is not None else [])
    bar.rejected(1)
    bar.update(1)
    if not partial:
        raise _Stop(f"{record.place}: {record.error or (violation and violation.description)}")


def _stop_message(error: BundleError, failed: list[SourceRecord], unreachable: bool) -> str:
    if not failed:
        return error.message
    first, last = failed[0].place, failed[-1].place
    chunk = error.failed_chunk
    unknown = any(r.outcome is Outcome.UNKNOWN for r in chunk.results)
    fate = "their outcome is unknown" if unknown else "none of them was written"
    if unreachable:
        return (
            f"the server could not be reached while applying {first}..{last} "
            f"({error.cause}), so {fate}. Run the same command again when the server is "
            "back: the requests it already applied are not applied twice"
        )
    if chunk.rejected or any(r.violations for r in chunk.results):
        why = f"{error.cause.code.name}: invalid records, see the rejects file"
        advice = "Fix those records (the schema may have changed since the check) and run again"
    else:
        why = str(error.cause)
        advice = "Run the same command again once the cause is fixed"
    return (
        f"the request with {first}..{last} failed ({why}), so {fate}; the records before "
        f"it stay applied and the rest of the source was not sent. {advice}: requests "
        "already applied are not applied twice"
    )


def validate_records(
    client: Client,
    schema: str,
    records: Iterator[SourceRecord],
    rejects: RejectsFile,
    bar: Progress,
    *,
    coerce_strings: bool,
    flatten_nested: bool,
    outcome: str = "invalid",
) -> Summary:
    summary = Summary()
    window: dict[int, SourceRecord] = {}  # input index -> record, until its answer

    def answered(positions: Sequence[int], invalid: Sequence[RecordReport]) -> None:
        for report in invalid:
            rejects.add(window[report.index], outcome, report.violations)
        for index in positions:
            del window[index]
        summary.counts["invalid"] += len(invalid)
        summary.counts["valid"] += len(positions) - len(invalid)
        bar.rejected(len(invalid))
        bar.update(len(positions))

    # One validation for the whole file: every request is checked against the same
    # version. A request is in flight while this thread reads the file and builds the
    # next (waiting for the server releases the GIL).
    validation = client._validation(
        schema, coerce_strings=coerce_strings, flatten_nested=flatten_nested, on_answer=answered
    )
    try:
        index = 0
        for record in records:
            summary.read += 1
            violation = _too_large(record)
            if record.error or violation is not None:
                summary.counts["invalid"] += 1
                rejects.add(record, outcome, [violation] if violation is not None else [])
                bar.rejected(1)
                bar.update(1)
                continue
            window[index] = record
            index += 1
            if record.metadata_json and not flatten_nested:
                validation.add_json(record.data_unit_id, record.metadata_json)
            else:
                validation.add(record.data_unit_id, record.decoded_metadata())
        validation.report()
    finally:
        validation.close()
    return summary


def describe_rejects(rejects: RejectsFile) -> list[str]:
    if not rejects.count:
        return ["rejects: none"]
    lines = [f"rejects: {rejects.count} record(s) with their violations in {rejects.path}"]
    lines += [f"  {example}" for example in rejects.examples]
    if rejects.count > len(rejects.examples):
        lines.append("  …")
    return lines
