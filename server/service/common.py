"""Helpers shared by the services: clock, retries, paging and request limits."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..domain.bundle import StoredRecord
from ..domain.errors import (
    ConcurrentWrite,
    InvalidArgument,
    InvalidName,
    InvalidPageToken,
    RequestTooLarge,
    SchemaVersionNotFound,
)
from ..domain.names import schema_name_problem
from ..domain.validator import MAX_RECORD_BYTES, encode_record
from ..storage.schemas import SchemaRef

T = TypeVar("T")

Clock = Callable[[], datetime]
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
WRITE_ATTEMPTS = 4


def utc_now() -> datetime:
    return datetime.now(UTC)


def retry_on_conflict(operation: Callable[[], T], attempts: int = WRITE_ATTEMPTS) -> T:
    """Run a transaction again when a concurrent writer invalidated what it read."""
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except ConcurrentWrite:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def require_schema_name(name: str) -> None:
    problem = schema_name_problem(name)
    if problem:
        raise InvalidName(problem)


def require_at_most(count: int, limit: int, what: str) -> None:
    if count > limit:
        raise RequestTooLarge(f"{count} {what} in one request; the limit is {limit}")


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument(f"page_size must be 0..{MAX_PAGE_SIZE}, got {requested}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(kind: str, position: Any) -> str:
    raw = json.dumps({"k": kind, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, kind: str) -> Any:
    """The position inside a token issued for `kind` listings; None for no token."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(data, dict) or data.get("k") != kind:
            raise ValueError(kind)
        return data["p"]
    except (ValueError, KeyError, binascii.Error, UnicodeDecodeError):
        raise InvalidPageToken(
            f"page_token {token[:40]!r} was not issued for this listing; "
            "pass the next_page_token of the previous response"
        ) from None


# Records per response are capped by size as well as by count: 1000 records of up to
# 256 KiB would not fit in a 64 MiB message.
RESPONSE_BUDGET_BYTES = 32 * 1024 * 1024


def records_that_fit(records: Sequence[StoredRecord]) -> int:
    """How many of `records`, in order, fit in a response (always at least one)."""
    limit = RESPONSE_BUDGET_BYTES
    if len(records) * (MAX_RECORD_BYTES + 1024) <= limit:  # fits whatever they hold
        return len(records)
    used = 0
    for count, record in enumerate(records):
        used += encode_record(record.values).size + len(record.data_unit_id) + 64
        if used > limit and count:
            return count
    return len(records)


def resolve_version(ref: SchemaRef, version: int) -> int:
    """A requested version number: 0 means the latest; others must exist."""
    if version < 0:
        raise InvalidArgument(f"version must be 0 (latest) or a version number, got {version}")
    if version == 0:
        return ref.latest_version
    if version > ref.latest_version:
        raise SchemaVersionNotFound(ref.name, version, ref.latest_version)
    return version
