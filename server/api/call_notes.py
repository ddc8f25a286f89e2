"""What the JSON log line of the call being served tells beyond its method and status:
the schema the request names and the number of records the call carried.

The error-mapping interceptor opens the notes of a call only when the JSON log is on;
otherwise noting finds none and costs one thread-local lookup. gRPC serves each unary
call on one thread from its interceptors to its servicer, so the notes are per thread.
"""

from __future__ import annotations

import threading


class CallNotes:
    __slots__ = ("records", "schema")

    def __init__(self) -> None:
        self.schema: str | None = None
        self.records: int | None = None


_local = threading.local()


def begin() -> CallNotes:
    notes = CallNotes()
    _local.notes = notes
    return notes


def end() -> None:
    _local.notes = None


def note_schema(name: str) -> None:
    notes: CallNotes | None = getattr(_local, "notes", None)
    if notes is not None:
        notes.schema = name


def note_records(count: int) -> None:
    notes: CallNotes | None = getattr(_local, "notes", None)
    if notes is not None:
        notes.records = count
