"""API key repository: create, list and revoke keys; find a key by its token's hash."""

from __future__ import annotations

import json
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain.access import ApiKey, Role
from ..domain.errors import KeyExists, KeyNotFound
from .database import Database
from .models import ApiKeyRow

_keys = cast(Table, ApiKeyRow.__table__)

_BY_HASH = select(_keys.c.name, _keys.c.role, _keys.c.schemas, _keys.c.revoked_at).where(
    _keys.c.token_hash == bindparam("token_hash")
)
_ANY_KEY = text("SELECT 1 FROM api_keys LIMIT 1")  # no bound LIMIT: nothing to pass


def _key(name: str, role: str, schemas: str, revoked: object) -> ApiKey:
    return ApiKey(name, Role[role.upper()], tuple(json.loads(schemas)), revoked is not None)


def find_by_hash(db: Database, token_hash: str) -> ApiKey | None:
    """The key of a token, revoked or not; read on every call, outside any transaction, so
    that a key revoked through any server or the CLI stops working at once everywhere."""
    rows = db.read(_BY_HASH, {"token_hash": token_hash})
    return _key(*rows[0]) if rows else None


def any_key_exists(db: Database) -> bool:
    """Whether a key was ever made (revoked ones count: enforcement never switches off)."""
    return bool(db.read(_ANY_KEY, {}))


def create_key(
    session: Session, name: str, role: Role, schemas: tuple[str, ...], token_hash: str,
    now: datetime,
) -> ApiKey:  # fmt: skip
    session.add(
        ApiKeyRow(name=name, role=role.label, schemas=json.dumps(list(schemas)),
                  token_hash=token_hash, created_at=now)
    )  # fmt: skip
    try:
        session.flush()
    except IntegrityError:
        raise KeyExists(name) from None
    return ApiKey(name, role, schemas)


def list_keys(session: Session) -> list[tuple[ApiKey, datetime, datetime | None]]:
    """Every key with when it was made and revoked, by name."""
    rows = session.execute(
        select(ApiKeyRow.name, ApiKeyRow.role, ApiKeyRow.schemas, ApiKeyRow.created_at,
               ApiKeyRow.revoked_at).order_by(ApiKeyRow.name)
    ).all()  # fmt: skip
    return [(_key(n, r, s, revoked), created, revoked) for n, r, s, created, revoked in rows]


def revoke_key(session: Session, name: str, now: datetime) -> bool:
    """Revoke a key; False when it was revoked already. KeyNotFound for no such key."""
    row = session.execute(
        select(ApiKeyRow.revoked_at).where(ApiKeyRow.name == name).with_for_update()
    ).one_or_none()
    if row is None:
        raise KeyNotFound(name)
    if row.revoked_at is not None:
        return False
    session.execute(update(ApiKeyRow).where(ApiKeyRow.name == name).values(revoked_at=now))
    return True
