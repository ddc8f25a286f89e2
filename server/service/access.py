"""API key use cases: make, list and revoke keys (with audit events); authenticate calls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..domain.access import ApiKey, Caller, Role, new_token, require_key_name, schema_globs
from ..domain.access import token_hash as hash_of
from ..domain.errors import Unauthenticated
from ..storage import audit, keys
from ..storage.database import Database
from .common import Clock, utc_now


class AccessService:
    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock
        self._keys_seen = False  # once a key exists it always will: keys are never deleted

    def keys_exist(self) -> bool:
        """Whether calls need a key: read until the first key is made, then remembered."""
        if not self._keys_seen:
            self._keys_seen = keys.any_key_exists(self.db)
        return self._keys_seen

    def authenticate(self, token: str) -> ApiKey:
        """The unrevoked key of `token`, read from the database on every call."""
        key = keys.find_by_hash(self.db, hash_of(token))
        if key is None:
            raise Unauthenticated(
                "the API key is not valid; check the token (it is shown once, when "
                "`metareg auth create-key` makes the key)"
            )
        if key.revoked:
            raise Unauthenticated(f'the API key "{key.name}" was revoked')
        return key

    def create_key(
        self, name: str, role: Role, schemas: Sequence[str], caller: Caller
    ) -> tuple[ApiKey, str]:
        """A new key and its token (shown once: only its hash is kept)."""
        require_key_name(name)
        globs = schema_globs(schemas)
        token = new_token()
        now = self.clock()
        with self.db.session(write=True) as session:
            key = keys.create_key(session, name, role, globs, hash_of(token), now)
            covered = ", ".join(globs) if globs else "every schema"
            audit.record(session, caller, None, f'create key "{name}": {role.label} of {covered}',
                         "applied", now)  # fmt: skip
        self._keys_seen = True
        return key, token

    def list_keys(self) -> list[tuple[ApiKey, datetime, datetime | None]]:
        with self.db.session() as session:
            return keys.list_keys(session)

    def revoke_key(self, name: str, caller: Caller) -> bool:
        """Revoke a key at once, on every server; False when it was revoked already."""
        now = self.clock()
        with self.db.session(write=True) as session:
            revoked = keys.revoke_key(session, name, now)
            if revoked:
                audit.record(session, caller, None, f'revoke key "{name}"', "applied", now)
        return revoked
