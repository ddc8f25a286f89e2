"""The domain error hierarchy; each class maps to exactly one status code.

    MetaregError
    ├── InvalidArgument            INVALID_ARGUMENT
    │   ├── InvalidName
    │   ├── InvalidSchemaChange    (violations: changes[i])
    │   ├── InvalidSchemaDocument  (violations: document["key"])
    │   ├── InvalidMetadata        (violations: records[i] / updates[i]; detail)
    │   ├── MalformedRecords       (violations: updates_json[i] / records_json[i])
    │   ├── RequestTooLarge
    │   ├── InvalidPageToken
    │   └── InvalidQuery           (column of the offending token)
    ├── NotFound                   NOT_FOUND
    │   ├── SchemaNotFound
    │   ├── SchemaVersionNotFound
    │   └── KeyNotFound
    ├── AlreadyExists              ALREADY_EXISTS
    │   └── KeyExists
    ├── FailedPrecondition         FAILED_PRECONDITION
    │   ├── IncompatibleChange     (impact on stored records)
    │   ├── IdempotencyKeyReused
    │   └── DatabaseNotAtHead
    ├── Aborted                    ABORTED
    │   ├── VersionConflict
    │   └── ConcurrentWrite
    ├── ResourceExhausted          RESOURCE_EXHAUSTED
    │   └── TooManyMatches
    ├── Unavailable                UNAVAILABLE
    │   └── StorageUnavailable
    ├── Unauthenticated            UNAUTHENTICATED (no valid, unrevoked API key)
    ├── PermissionDenied           PERMISSION_DENIED (the key's role or schemas do not allow it)
    └── CallAbandoned              CANCELLED (the caller left before the commit)

The api layer turns these into gRPC statuses; nothing here imports grpc.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar


class ErrorCode(enum.Enum):
    """Status codes a domain error can carry (names match grpc.StatusCode)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    CANCELLED = "CANCELLED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One broken rule, addressed by a request field path such as `changes[2]`."""

    field: str
    description: str
    reason: str = ""


class MetaregError(Exception):
    """Base of every error a client can cause or observe."""

    code: ClassVar[ErrorCode]

    def __init__(self, message: str, violations: Iterable[FieldViolation] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.violations: tuple[FieldViolation, ...] = tuple(violations)


class InvalidArgument(MetaregError):
    code = ErrorCode.INVALID_ARGUMENT


class InvalidName(InvalidArgument):
    """A schema name, key name or data unit id breaks its naming rule."""


class InvalidSchemaChange(InvalidArgument):
    """One or more schema changes break a rule; violations name `changes[i]`."""

    @classmethod
    def from_violations(cls, violations: Sequence[FieldViolation]) -> InvalidSchemaChange:
        lines = "; ".join(f"{v.field}: {v.description}" for v in violations)
        noun = "change is" if len(violations) == 1 else "changes are"
        return cls(f"{len(violations)} schema {noun} invalid: {lines}", violations)


class InvalidSchemaDocument(InvalidArgument):
    """An import document is malformed; violations name `document["key"]`."""


class InvalidMetadata(InvalidArgument):
    """Records or updates break schema rules; `detail` carries per-record results."""

    def __init__(
        self, message: str, violations: Iterable[FieldViolation] = (), detail: object = None
    ) -> None:
        super().__init__(message, violations)
        self.detail = detail


class MalformedRecords(InvalidArgument):
    """A JSON record form that does not parse or does not have the record shape."""


class RequestTooLarge(InvalidArgument):
    """More items in one request than the documented limit."""


class InvalidPageToken(InvalidArgument):
    """A page token that this server did not issue for this listing."""


class InvalidQuery(InvalidArgument):
    """A filter or ordering that does not parse or does not fit the schema."""

    def __init__(self, column: int, problem: str, field: str = "filter") -> None:
        self.column = column
        self.problem = problem
        self.field = field
        message = f"{field} error at column {column}: {problem}"
        super().__init__(message, [FieldViolation(field, message, "query")])
        # Machine-readable position, sent as a google.rpc.ErrorInfo detail.
        self.info = {"field": field, "column": str(column), "problem": problem}

    def for_field(self, field: str) -> InvalidQuery:
        return InvalidQuery(self.column, self.problem, field)


class NotFound(MetaregError):
    code = ErrorCode.NOT_FOUND


class SchemaNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f'schema "{name}" does not exist')
        self.name = name


class SchemaVersionNotFound(NotFound):
    def __init__(self, name: str, version: int, latest: int) -> None:
        super().__init__(f'schema "{name}" has no version {version} (versions are 1..{latest})')


class KeyNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f'there is no API key named "{name}"')


class AlreadyExists(MetaregError):
    code = ErrorCode.ALREADY_EXISTS


class KeyExists(AlreadyExists):
    def __init__(self, name: str) -> None:
        super().__init__(f'an API key named "{name}" exists already; choose another name')


class FailedPrecondition(MetaregError):
    code = ErrorCode.FAILED_PRECONDITION


class IncompatibleChange(FailedPrecondition):
    """A schema change would make stored records invalid and force was not set."""

    def __init__(self, message: str, impact: object) -> None:
        super().__init__(message)
        self.impact = impact


class IdempotencyKeyReused(FailedPrecondition):
    def __init__(self, key: str) -> None:
        super().__init__(
            f'idempotency key "{key}" was already used for a bundle with different content; '
            "use a new key for a new bundle"
        )


class DatabaseNotAtHead(FailedPrecondition):
    def __init__(self, current: str | None, head: str, *, newer: bool = False) -> None:
        advice = (
            "it was migrated by a newer metareg: run that version (or a newer one)"
            if newer
            else "run `metareg db upgrade` first"
        )
        super().__init__(
            f"database schema is at revision {current or 'none'}, but this server needs "
            f"{head}; {advice}"
        )


class Aborted(MetaregError):
    code = ErrorCode.ABORTED


class VersionConflict(Aborted):
    def __init__(self, name: str, expected: int, latest: int) -> None:
        super().__init__(
            f'schema "{name}" is at version {latest}, not the expected version {expected}; '
            "re-read the schema, re-apply your changes and save again"
        )
        self.latest = latest


class ConcurrentWrite(Aborted):
    """A concurrent transaction touched the same rows; the request can be retried."""


class ResourceExhausted(MetaregError):
    code = ErrorCode.RESOURCE_EXHAUSTED
    # Seconds after which the same call may succeed (sent as google.rpc.RetryInfo), for
    # a server at capacity; None when repeating the call cannot help.
    retry_after: ClassVar[float | None] = None


class TooManyMatches(ResourceExhausted):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the filter matches more than {limit} records; one UpdateByFilter call updates at "
            "most that many. Narrow the filter (for example with an extra condition) and repeat"
        )


class Unavailable(MetaregError):
    code = ErrorCode.UNAVAILABLE


class StorageUnavailable(Unavailable):
    """The database could not be reached or refused the connection."""


class Unauthenticated(MetaregError):
    """No valid, unrevoked API key came with a call that needs one."""

    code = ErrorCode.UNAUTHENTICATED


class PermissionDenied(MetaregError):
    """The caller's key does not allow this RPC, or not on this schema."""

    code = ErrorCode.PERMISSION_DENIED


class CallAbandoned(MetaregError):
    """The call was cancelled, ran out of time or was cut off by shutdown before its
    transaction committed: it was rolled back, so its status never hides a write."""

    code = ErrorCode.CANCELLED
