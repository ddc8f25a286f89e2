"""Schema versions and compiled validators, cached by (schema, version).

Versions are immutable, so a cached entry is never stale; replicas sharing one
database can each keep their own cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy.orm import Session

from ..domain.errors import SchemaNotFound, SchemaVersionNotFound
from ..domain.fast_decoder import FastDecoder
from ..domain.schema import SchemaVersion
from ..domain.validator import CompiledValidator
from ..storage import schemas
from ..storage.database import Database
from ..storage.schemas import SchemaRef
from .common import require_schema_name, resolve_version


class SchemaCache:
    def __init__(self, max_entries: int = 512) -> None:
        self._entries: OrderedDict[tuple[str, int], tuple[SchemaVersion, CompiledValidator]] = (
            OrderedDict()
        )
        self._max_entries = max_entries
        self._lock = threading.Lock()
        # The validator of the highest version cached so far, per schema name.
        self._latest: dict[str, CompiledValidator] = {}
        # Compiled JSON decoders, made on first use (None: the version has none).
        self._decoders: dict[tuple[str, int], FastDecoder | None] = {}

    def _entry(
        self, session: Session, ref: SchemaRef, version: int
    ) -> tuple[SchemaVersion, CompiledValidator]:
        key = (ref.name, version)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        loaded = schemas.load_version(session, ref, version)
        if loaded is None:
            raise SchemaVersionNotFound(ref.name, version, ref.latest_version)
        entry = (loaded, CompiledValidator(ref.name, version, loaded.state))
        with self._lock:
            self._entries[key] = entry
            known = self._latest.get(ref.name)
            if known is None or known.version < version:
                self._latest[ref.name] = entry[1]
            while len(self._entries) > self._max_entries:
                (name, _), (_, evicted) = self._entries.popitem(last=False)
                if self._latest.get(name) is evicted:
                    del self._latest[name]
                self._decoders.pop((name, evicted.version), None)
        return entry

    def fast_decoder(self, validator: CompiledValidator) -> FastDecoder | None:
        """The compiled JSON decoder of a cached validator's version (built once)."""
        key = (validator.schema_name, validator.version)
        try:
            return self._decoders[key]
        except KeyError:
            pass
        decoder = FastDecoder.compile(validator.state)
        with self._lock:
            if key in self._entries:  # not for a version evicted meanwhile
                self._decoders[key] = decoder
        return decoder

    def cached(self, name: str, version: int) -> tuple[SchemaVersion, CompiledValidator] | None:
        """A cached version, without asking the database (None when not cached)."""
        with self._lock:
            entry = self._entries.get((name, version))
            if entry is not None:
                self._entries.move_to_end((name, version))
            return entry

    def read(
        self, db: Database, name: str, version: int
    ) -> tuple[SchemaVersion, CompiledValidator]:
        """A version (0: the latest) for calls that write nothing. Which version is the
        latest is one indexed read of the schema row outside any transaction, so every
        replica serves the version committed last; the version itself usually comes from
        this cache (versions are immutable)."""
        require_schema_name(name)
        ref = schemas.read_ref(db, name)
        if ref is None or ref.latest_version == 0:
            raise SchemaNotFound(name)
        number = resolve_version(ref, version)
        cached = self.cached(name, number)
        if cached is not None:
            return cached
        with db.session() as session:
            return self._entry(session, ref, number)

    def latest_known(self, name: str) -> CompiledValidator | None:
        """The newest cached validator of schema `name`, without asking the database.

        It may be behind the database: use it only where any version gives the
        same result, faster or slower (e.g. decoding hints).
        """
        with self._lock:
            return self._latest.get(name)

    def version(self, session: Session, ref: SchemaRef, version: int) -> SchemaVersion:
        return self._entry(session, ref, version)[0]

    def validator(self, session: Session, ref: SchemaRef, version: int) -> CompiledValidator:
        return self._entry(session, ref, version)[1]
