"""Stream a metadata file through validation or a bundle, writing rejects as they happen.

Memory stays flat whatever the file size: records are read one line at a time, at most
two requests (1000 records each: one in flight, one being queued) are held, and
per-update results are not accumulated. JSONL metadata read with `pass_through` is sent
as the file's JSON bytes and decoded only for the rejects file.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

from ._bundle_results import ChunkResult
from ._client import Client
from ._datafiles import SourceRecord
from ._errors import BundleError, DeadlineExceededError, UnavailableError, ValueConversionError
from ._results import Outcome, Violation

PAGE = 1000
SHOWN_REJECTS = 5


class Bar(Protocol):
    def update(self, n: int = 1) -> object: ...


class RejectsFile:
    """Rejected records as JSONL (re-appliable once fixed), created on the first reject."""

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
            entries.append({"rule": "line", "description": f"line {record.line}: {record.error}"})
        line = {
            "line": record.line,
            "data_unit_id": record.data_unit_id,
            "metadata": record.decoded_metadata(),
            "outcome": outcome,
            "violations": entries,
        }
        text = json.dumps(line, ensure_ascii=False, default=str)
        try:
            self._stream.write(text + "\n")
        except UnicodeEncodeError:  # a lone surrogate read from JSON: keep it escaped
            self._stream.write(json.dumps(line, default=str) + "\n")
        self.count += 1
        if len(self.examples) < SHOWN_REJECTS:
            first = entries[0]["description"] if entries else outcome
            self.examples.append(f"line {record.line}: {first}")

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


@dataclass
class Summary:
    """What a run did, for the final report and the exit code."""

    counts: Counter[str] = field(default_factory=Counter)
    read: int = 0
    stopped: str = ""
    unreachable: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        bad = ("rejected", "invalid", "not_applied", "not_sent", "unknown")
        return not self.stopped and not any(self.counts[k] for k in bad)

    def line(self, order: Iterable[str]) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        parts = ", ".join(f"{name.replace('_', ' ')} {self.counts[name]}" for name in order)
        return f"{parts} ({self.read} records in {elapsed:.1f}s, {self.read / elapsed:,.0f}/s)"


class _Stop(Exception):
    """A bad line in an atomic run: stop before sending the request it belongs to."""


def _local_reject(record: SourceRecord, error: str, key: str = "") -> Violation:
    return Violation("", 0, record.data_unit_id, key, "value", "", f"line {record.line}: {error}")


def apply_records(
    client: Client,
    schema: str,
    records: Iterator[SourceRecord],
    rejects: RejectsFile,
    bar: Bar,
    *,
    mode: str,
    partial: bool,
    coerce_strings: bool,
    flatten_nested: bool,
) -> Summary:
    summary = Summary()
    # bundle index -> line, for the requests queued and in flight
    window: dict[int, SourceRecord] = {}

    failed_lines: list[int] = []

    def on_chunk(chunk: ChunkResult) -> None:
        if chunk.error is not None:
            failed_lines.extend(window[r.index].line for r in chunk.results)
        for result in chunk.results:
            source = window.pop(result.index)
            if result.outcome in (Outcome.REJECTED, Outcome.UNKNOWN):
                rejects.add(source, str(result.outcome), result.violations)
        bar.update(chunk.size)

    def reject_locally(record: SourceRecord, violation: Violation) -> None:
        summary.counts["rejected"] += 1
        rejects.add(record, "rejected", [violation] if not record.error else [])
        bar.update(1)
        if not partial:
            raise _Stop(violation.description)

    bundle = client.bundle(
        schema,
        partial=partial,
        progress=on_chunk,
        coerce_strings=coerce_strings,
        flatten_nested=flatten_nested,
        keep_results=False,
    )
    index = 0
    try:
        with bundle:
            for record in records:
                summary.read += 1
                if record.error:
                    reject_locally(record, _local_reject(record, record.error))
                    continue
                window[index] = record
                try:
                    if record.metadata_json and not flatten_nested:
                        bundle._update_json(record.data_unit_id, record.metadata_json, mode)
                    else:
                        bundle.update(record.data_unit_id, record.decoded_metadata(), mode=mode)
                except ValueConversionError as error:
                    del window[index]
                    reject_locally(record, _local_reject(record, error.message, error.key or ""))
                    continue
                index += 1
    except _Stop as stop:
        summary.stopped = (
            f"{stop}; stopped without sending the request it belongs to "
            "(without --partial every request of 1000 is all-or-nothing)"
        )
    except BundleError as error:
        summary.stopped = _stop_message(error, failed_lines)
        summary.unreachable = isinstance(error.cause, UnavailableError | DeadlineExceededError)
    summary.counts.update({str(k): n for k, n in bundle.counts.items()})
    return summary


def _stop_message(error: BundleError, lines: list[int]) -> str:
    if not lines:
        return error.message
    first, last = min(lines), max(lines)
    cause = error.cause
    if error.failed_chunk.rejected or any(r.violations for r in error.failed_chunk.results):
        why = f"{cause.code.name}: invalid records, see the rejects file"
    else:
        why = str(cause)
    unknown = any(r.outcome is Outcome.UNKNOWN for r in error.failed_chunk.results)
    fate = "their outcome is unknown" if unknown else "none of them was written"
    return (
        f"the request with lines {first}..{last} failed ({why}), so {fate}; the lines "
        f"before {first} stay applied and the rest of the file was not sent. Fix the "
        "input and run the file again (re-applying the same records changes nothing)"
    )


def validate_records(
    client: Client,
    schema: str,
    records: Iterator[SourceRecord],
    rejects: RejectsFile,
    bar: Bar,
    *,
    coerce_strings: bool,
    flatten_nested: bool,
) -> Summary:
    summary = Summary()
    page: list[SourceRecord] = []
    # One validation for the whole file: every page is checked against the same version.
    validation = client._validation(
        schema, coerce_strings=coerce_strings, flatten_nested=flatten_nested
    )

    def check_page() -> None:
        for record in page:
            if record.metadata_json and not flatten_nested:
                validation.add_json(record.data_unit_id, record.metadata_json)
            else:
                validation.add(record.data_unit_id, record.decoded_metadata())
        report = validation.page_report()
        summary.counts["valid"] += report.valid_count
        summary.counts["invalid"] += report.invalid_count
        for invalid in report.invalid_records:
            rejects.add(page[invalid.index], "invalid", invalid.violations)
        bar.update(len(page))
        page.clear()

    for record in records:
        summary.read += 1
        if record.error:
            summary.counts["invalid"] += 1
            rejects.add(record, "invalid", [])
            bar.update(1)
            continue
        page.append(record)
        if len(page) >= PAGE:
            check_page()
    if page:
        check_page()
    return summary


def describe_rejects(rejects: RejectsFile) -> list[str]:
    if not rejects.count:
        return ["rejects: none"]
    lines = [f"rejects: {rejects.count} record(s) with their violations in {rejects.path}"]
    lines += [f"  {example}" for example in rejects.examples]
    if rejects.count > len(rejects.examples):
        lines.append("  …")
    return lines
