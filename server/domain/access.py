"""Who may call what: API keys, their roles and schema globs, and the caller of a change.

A key has one role and a list of schema-name globs (fnmatch syntax, case-sensitive, as
schema names are lower case; an empty list covers every schema). Its token is shown once
when the key is made; only the token's SHA-256 is stored. Tokens are 256 random bits,
so a fast hash is as safe as a slow one and costs a microsecond per call.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

from .errors import InvalidArgument

TOKEN_PREFIX = "mrk_"


class Role(enum.IntEnum):
    """Each role may do what the one below it may, and more."""

    READER = 1
    WRITER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise InvalidArgument(
                f"role {name!r} is not one of: {', '.join(r.name.lower() for r in cls)}"
            ) from None

    @property
    def label(self) -> str:
        return self.name.lower()


# The least role each RPC needs (DESIGN.md §7). An RPC missing here is refused to every
# key, so a new RPC cannot be served without a decision (tests/test_access.py checks
# that every RPC of the services is listed).
REQUIRED_ROLE: dict[str, Role] = {
    "GetSchema": Role.READER,
    "ListSchemas": Role.READER,
    "ListSchemaVersions": Role.READER,
    "ExportJsonSchema": Role.READER,
    "ValidateMetadata": Role.READER,
    "GetMetadata": Role.READER,
    "QueryMetadata": Role.READER,
    "CountMetadata": Role.READER,
    "ListValues": Role.READER,
    "ApplyBundle": Role.WRITER,
    "DeleteMetadata": Role.WRITER,
    "UpdateByFilter": Role.WRITER,
    "UpdateSchema": Role.ADMIN,
    "ImportSchema": Role.ADMIN,
    "ListAuditEvents": Role.ADMIN,
}

_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_GLOB = re.compile(r"[a-z0-9._*?\[\]!-]{1,128}")


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    role: Role
    schemas: tuple[str, ...]  # globs; () covers every schema
    revoked: bool = False

    def allows(self, rpc: str) -> bool:
        needed = REQUIRED_ROLE.get(rpc)
        return needed is not None and self.role >= needed

    def covers(self, schema: str) -> bool:
        return not self.schemas or any(fnmatchcase(schema, glob) for glob in self.schemas)

    @property
    def covers_everything(self) -> bool:
        return not self.schemas


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a call, for the audit log: the key's name (or "anonymous"), the peer
    address and the RPC."""

    key_name: str
    peer: str
    rpc: str


ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One change as the audit log keeps it (see AuditEvent in schema_registry.proto)."""

    id: int
    created_at: datetime
    key_name: str
    peer: str
    rpc: str
    schema: str | None
    summary: str
    outcome: str


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def require_key_name(name: str) -> None:
    if not _KEY_NAME.fullmatch(name) or name == ANONYMOUS:
        raise InvalidArgument(
            f"key name {name!r} is invalid: use 1..64 characters from A-Z, a-z, 0-9, '.', "
            f"'_' and '-', starting with a letter or digit (and not {ANONYMOUS!r})"
        )


def schema_globs(globs: Sequence[str]) -> tuple[str, ...]:
    """Checked schema-name globs, e.g. ("cams", "team-a-*")."""
    for glob in globs:
        if not _GLOB.fullmatch(glob):
            raise InvalidArgument(
                f"schema glob {glob!r} is invalid: schema names use a-z, 0-9, '.', '_' and "
                "'-'; a glob adds *, ?, [...] and [!...]"
            )
    return tuple(dict.fromkeys(globs))
