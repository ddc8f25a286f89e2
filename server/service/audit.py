"""Reading the audit log, limited to the schemas the caller's key covers."""

from __future__ import annotations

from ..domain.access import ApiKey, AuditEvent
from ..domain.errors import InvalidPageToken, PermissionDenied
from ..storage import audit, schemas
from ..storage.database import Database
from .common import decode_page_token, encode_page_token, page_size, require_schema_name
from .schemas import Page

NEWEST = 2**31 - 1  # past the largest id (ids are 32-bit integers)


class AuditService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list_events(
        self, key: ApiKey | None, schema: str, requested_size: int, token: str
    ) -> Page[AuditEvent]:
        """Newest first. A key restricted to some schemas sees only their events; events
        that concern no schema (API keys) only a key that covers every schema."""
        size = page_size(requested_size)
        before = decode_page_token(token, f"audit:{schema}") or NEWEST
        if type(before) is not int or before < 1:
            raise InvalidPageToken("page_token was not issued for ListAuditEvents")
        if schema:
            require_schema_name(schema)
            if key is not None and not key.covers(schema):
                raise PermissionDenied(f'the API key "{key.name}" does not cover schema "{schema}"')
        with self.db.session() as session:
            visible = None
            if not schema and key is not None and not key.covers_everything:
                visible = [n for n in schemas.all_names(session) if key.covers(n)]
            items = audit.list_events(session, schema=schema or None, schemas=visible,
                                      before_id=before, limit=size + 1)  # fmt: skip
        more = len(items) > size
        items = items[:size]
        next_token = encode_page_token(f"audit:{schema}", items[-1].id) if more else ""
        return Page(items, next_token)
