"""MetadataSchema: a local copy of one schema version, and edits queued until `save()`.

The getters show the last version read from (or saved to) the server. Edits are
queued as `SchemaChange` messages and sent as ONE UpdateSchema request with the
version they were made against, so a concurrent save is detected (ConflictError)
instead of silently overwritten. Only mistakes that are wrong on their face are caught
here; the server checks every rule (key names, limits, type changes…).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import Message

from metareg.v1 import schema_pb2 as spb
from metareg.v1 import schema_registry_pb2 as rpb

from ._errors import ConflictError, NotFoundError, SchemaEditError
from ._results import SchemaImpact, SchemaVersionInfo, Violation
from ._transport import READ_RETRY_CODES, Transport

SCALAR_TYPES = ("varchar", "text", "number", "boolean", "datetime", "uuid")
TYPE_ALIASES = {"string": "varchar", "long_string": "text"}
DEFAULT_VARCHAR_MAX_LENGTH = 8192  # DESIGN §3: a varchar without max_length allows 8192
_STATE_NAMES = {
    spb.KEY_STATE_ACTIVE: "active",
    spb.KEY_STATE_SOFT_DELETED: "soft_deleted",
    spb.KEY_STATE_HARD_DELETED: "hard_deleted",
}


def timestamp(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    moment: datetime = getattr(message, name).ToDatetime(tzinfo=UTC)
    return moment


def _scalar_type(data_type: object) -> str:
    """The type name to send, after a check that it names a scalar type."""
    if not isinstance(data_type, str):
        raise SchemaEditError(f"data_type must be a type name, not {data_type!r}")
    name = data_type.strip().lower()
    if name in SCALAR_TYPES or name in TYPE_ALIASES:
        return data_type
    valid = ", ".join([*SCALAR_TYPES, *(f"{a} (= {t})" for a, t in TYPE_ALIASES.items())])
    if name in ("enum", "embedding"):
        raise SchemaEditError(f"use add_{name}() to declare an {name} key; scalar types: {valid}")
    raise SchemaEditError(f"unknown type {data_type!r}; valid scalar types: {valid}")


def _key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise SchemaEditError(f"a key name must be a non-empty string, not {key!r}")
    return key


def _flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise SchemaEditError(f"{what} must be True or False, not {value!r}")
    return value


def _options(values: object, what: str) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise SchemaEditError(f"{what} must be a list of option strings, not {values!r}")
    options = list(values)
    if not options:
        raise SchemaEditError(f"{what} must not be empty")
    wrong = [v for v in options if not isinstance(v, str)]
    if wrong:
        raise SchemaEditError(f"{what} must be strings; got {wrong[0]!r}")
    return options


def _number(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaEditError(f"{what} must be a number, not {value!r}")
    return float(value)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise SchemaEditError(f"{what} must be a string, not {value!r}")
    return value


def key_constraints(
    minimum: object = None, maximum: object = None, pattern: object = None, required: object = False
) -> spb.KeyConstraints | None:
    """The KeyConstraints message, after checks of the arguments' types; None for no
    constraint (the field of the change is then left unset, which means none)."""
    message = spb.KeyConstraints(required=_flag(required, "required"))
    low, high = _number(minimum, "minimum"), _number(maximum, "maximum")
    if low is not None:
        message.minimum = low
    if high is not None:
        message.maximum = high
    if pattern is not None:
        message.pattern = _text(pattern, "pattern")
    return message if message.ListFields() else None


def constraints_of(definition: spb.KeyDefinition) -> dict[str, Any]:
    """A key's constraints as the import format writes them: {"minimum": 0, ...}."""
    given = definition.constraints
    found: dict[str, Any] = {
        name: getattr(given, name)
        for name in ("minimum", "maximum", "pattern")
        if given.HasField(name)
    }
    if given.required:
        found["required"] = True
    return found


def key_document_entry(definition: spb.KeyDefinition) -> str | dict[str, Any]:
    """One key in the import-document format (the flat form where it is lossless).

    An indexed key takes the full form with `"indexed": true`: an import without it
    would turn the key's index off; so do constraints and a description.
    """
    entry: dict[str, Any] = {"type": str(definition.type)}
    if definition.type == "varchar" and definition.max_length != DEFAULT_VARCHAR_MAX_LENGTH:
        entry["max_length"] = definition.max_length
    elif definition.type == "enum":
        entry["values"] = list(definition.enum_options)
    elif definition.type == "embedding":
        entry["size"] = definition.embedding_size
    if definition.indexed:
        entry["indexed"] = True
    entry.update(constraints_of(definition))
    if definition.description:
        entry["description"] = str(definition.description)
    return entry if len(entry) > 1 else entry["type"]


def describe_constraints(definition: spb.KeyDefinition) -> str:
    """E.g. "minimum 0, maximum 1, required"; empty when the key has none."""
    parts = []
    for name, value in constraints_of(definition).items():
        if name == "required":
            parts.append("required")
        elif name == "pattern":
            parts.append(f"pattern {value}")
        else:
            shown = str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
            parts.append(f"{name} {shown}")
    return ", ".join(parts)


def describe_type(definition: spb.KeyDefinition) -> str:
    if definition.type == "varchar":
        return f"varchar({definition.max_length})"
    if definition.type == "embedding":
        return f"embedding({definition.embedding_size})"
    if definition.type == "enum":
        return "enum(" + ", ".join(definition.enum_options) + ")"
    return str(definition.type)


def describe_change(change: spb.SchemaChange) -> str:
    kind = change.WhichOneof("change") or "empty"
    body = getattr(change, kind, None)
    if body is None:
        return kind
    fields = ", ".join(f"{f.name}={_shown(v)}" for f, v in body.ListFields())
    return f"{kind}({fields})"


def _shown(value: object) -> str:
    if isinstance(value, Message):  # constraints: {minimum: 0 required: true}
        text: str = text_format.MessageToString(value, as_one_line=True)
        return "{" + text + "}"
    return repr(value)


class MetadataSchema:
    """One schema: read its keys, queue edits, `save()` them as one new version.

    Get one with `Client.schema(name)`; a schema that does not exist yet has version 0.
    """

    def __init__(self, transport: Transport, message: spb.Schema) -> None:
        self._transport = transport
        self._message = message
        self._keys = {k.key: k for k in message.keys}
        self._pending: list[spb.SchemaChange] = []
        self._json_schema: dict[str, Any] | None = None
        self._compiled: Any = None

    @classmethod
    def fetch(cls, transport: Transport, name: str, version: int = 0) -> MetadataSchema:
        """Read a version (0 = latest); a schema that does not exist yet is version 0."""
        request = rpb.GetSchemaRequest(name=name, version=version)
        try:
            response = transport.call(
                transport.registry.GetSchema, request, retry_on=READ_RETRY_CODES
            )
        except NotFoundError:
            if version:
                raise
            return cls(transport, spb.Schema(name=name, version=0))
        return cls(transport, response.schema)

    # --- reading -------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self._message.name)

    @property
    def version(self) -> int:
        """The version these keys belong to; 0 for a schema that was never saved."""
        return int(self._message.version)

    @property
    def created_at(self) -> datetime | None:
        return timestamp(self._message, "created_at")

    @property
    def allow_unknown_keys(self) -> bool:
        return bool(self._message.allow_unknown_keys)

    @property
    def pending_changes(self) -> list[str]:
        """The queued edits, one line each, in the order `save()` sends them."""
        return [describe_change(c) for c in self._pending]

    def keys(self, *, include_deleted: bool = False) -> list[str]:
        """Key names, sorted; soft- and hard-deleted keys only with `include_deleted`."""
        return sorted(k.key for k in self._keys.values() if include_deleted or self._is_active(k))

    def key_info(self, key: str) -> dict[str, Any]:
        """A key's type, its parameters (`"indexed": True` for an indexed key) and its
        state, deleted keys included."""
        definition = self._definition(key, active=False)
        entry = key_document_entry(definition)
        info: dict[str, Any] = {"type": entry} if isinstance(entry, str) else dict(entry)
        if definition.type == "varchar":
            info["max_length"] = int(definition.max_length)
        return {**info, "state": self.key_state(key)}

    def key_state(self, key: str) -> str:
        """ "active", "soft_deleted" or "hard_deleted"."""
        return _STATE_NAMES.get(self._definition(key, active=False).state, "unknown")

    def get_key_type(self, key: str) -> str:
        """The canonical type name: varchar, text, number, boolean, datetime, uuid, enum or
        embedding."""
        return str(self._definition(key).type)

    def get_max_length(self, key: str) -> int:
        return int(self._typed(key, "varchar").max_length)

    def get_enum_options(self, key: str) -> list[str]:
        return list(self._typed(key, "enum").enum_options)

    def get_embedding_size(self, key: str) -> int:
        return int(self._typed(key, "embedding").embedding_size)

    def is_indexed(self, key: str) -> bool:
        """Whether queries find records by this key through an index."""
        return bool(self._definition(key).indexed)

    def get_minimum(self, key: str) -> float | None:
        """A number key's smallest accepted value (inclusive); None when unbounded."""
        constraints = self._definition(key).constraints
        return float(constraints.minimum) if constraints.HasField("minimum") else None

    def get_maximum(self, key: str) -> float | None:
        """A number key's largest accepted value (inclusive); None when unbounded."""
        constraints = self._definition(key).constraints
        return float(constraints.maximum) if constraints.HasField("maximum") else None

    def get_pattern(self, key: str) -> str | None:
        """A varchar or text key's RE2 pattern (searched anywhere in a value); None if none."""
        constraints = self._definition(key).constraints
        return str(constraints.pattern) if constraints.HasField("pattern") else None

    def is_required(self, key: str) -> bool:
        """Whether every record must hold this key once an update is applied."""
        return bool(self._definition(key).constraints.required)

    def get_constraints(self, key: str) -> dict[str, Any]:
        """The key's constraints in the import format, e.g. {"minimum": 0.0, "required":
        True}; {} when it has none."""
        return constraints_of(self._definition(key))

    def get_description(self, key: str) -> str:
        """What the key means, as declared; "" when it has no description."""
        return str(self._definition(key, active=False).description)

    def history(self) -> list[SchemaVersionInfo]:
        """Every version, newest first, with its time and one line per change."""
        if self.version == 0:
            return []
        versions: list[SchemaVersionInfo] = []
        token = ""
        while True:
            request = rpb.ListSchemaVersionsRequest(
                name=self.name, page_size=1000, page_token=token
            )
            page = self._transport.call(
                self._transport.registry.ListSchemaVersions, request, retry_on=READ_RETRY_CODES
            )
            versions += [
                SchemaVersionInfo(v.version, timestamp(v, "created_at"), tuple(v.changes))
                for v in page.versions
            ]
            token = page.next_page_token
            if not token:
                return versions

    def to_dict(self) -> dict[str, str | dict[str, Any]]:
        """The active keys in the import format: `import_schema_from_dict` round-trips it."""
        return {key: key_document_entry(self._keys[key]) for key in self.keys()}

    def to_json_schema(self) -> dict[str, Any]:
        """This version as a JSON Schema (draft 2020-12) for one record, from the server."""
        if self.version == 0:
            raise NotFoundError(f'schema "{self.name}" does not exist (it was never saved)')
        if self._json_schema is None:
            request = rpb.ExportJsonSchemaRequest(name=self.name, version=self.version)
            response = self._transport.call(
                self._transport.registry.ExportJsonSchema, request, retry_on=READ_RETRY_CODES
            )
            self._json_schema = json.loads(response.json_schema)
        return self._json_schema

    def validate(
        self, record: Mapping[str, object], *, flatten_nested: bool = False
    ) -> list[Violation]:
        """Check one record offline against the exported JSON Schema; [] when it is valid.

        Fetches the JSON Schema once per version. The server remains the authority: the
        JSON Schema cannot check the record size limit or non-finite floats.
        """
        if self._compiled is None:
            from ._offline import OfflineValidator  # jsonschema loads only when needed

            self._compiled = OfflineValidator(self.to_json_schema())
        violations: list[Violation] = self._compiled.validate(record, flatten_nested=flatten_nested)
        return violations

    # --- editing -------------------------------------------------------------

    def add_scalar(
        self,
        key: str,
        data_type: str,
        *,
        max_length: int | None = None,
        indexed: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
        pattern: str | None = None,
        required: bool = False,
        description: str = "",
    ) -> None:
        """Declare a scalar key: varchar (alias string), text (alias long_string), number,
        boolean, datetime or uuid. `indexed` makes queries that filter or sort by the key
        fast, at some cost in write throughput.

        Constraints: `minimum` and `maximum` (inclusive) for number, `pattern` (RE2,
        searched anywhere in the value: anchor it with ^ and $) for varchar and text, and
        `required` (every record must hold the key). `description`: up to 1024 characters.
        """
        change = spb.AddScalar(
            key=_key(key),
            type=_scalar_type(data_type),
            constraints=key_constraints(minimum, maximum, pattern, required),
            description=_text(description, "description"),
        )
        if max_length is not None:
            change.max_length = max_length
        if _flag(indexed, "indexed"):
            change.indexed = True
        self._queue(spb.SchemaChange(add_scalar=change))

    def set_scalar(
        self,
        key: str,
        data_type: str,
        *,
        max_length: int | None = None,
        indexed: bool | None = None,
    ) -> None:
        """Change a scalar key to another scalar type (or varchar length). Stored values that
        the new type rejects make `save()` fail unless `save(force=True)`. `indexed=None`
        keeps the key's indexing."""
        change = spb.SetScalar(key=_key(key), type=_scalar_type(data_type))
        if max_length is not None:
            change.max_length = max_length
        if indexed is not None:
            change.indexed = _flag(indexed, "indexed")
        self._queue(spb.SchemaChange(set_scalar=change))

    def add_enum(
        self,
        key: str,
        values: Sequence[str],
        *,
        indexed: bool = False,
        required: bool = False,
        description: str = "",
    ) -> None:
        change = spb.AddEnum(
            key=_key(key),
            values=_options(values, "enum values"),
            constraints=key_constraints(required=required),
            description=_text(description, "description"),
        )
        if _flag(indexed, "indexed"):
            change.indexed = True
        self._queue(spb.SchemaChange(add_enum=change))

    def set_constraints(
        self,
        key: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        pattern: str | None = None,
        required: bool = False,
    ) -> None:
        """Make the key's constraints exactly these: an argument left out removes that
        constraint. A new or tighter one is checked against the stored records: `save()`
        fails if some would become invalid, unless `save(force=True)`, which removes the
        invalid values (records that lack a required key are left as they are)."""
        constraints = key_constraints(minimum, maximum, pattern, required)
        change = spb.SetConstraints(key=_key(key), constraints=constraints)
        self._queue(spb.SchemaChange(set_constraints=change))

    def set_description(self, key: str, description: str) -> None:
        """Say what the key means (up to 1024 characters; "" removes the description)."""
        change = spb.SetDescription(key=_key(key), description=_text(description, "description"))
        self._queue(spb.SchemaChange(set_description=change))

    def set_indexed(self, key: str, indexed: bool = True) -> None:
        """Turn the query index of an active scalar or enum key on or off. Turning it on
        indexes the values already stored (embedding keys cannot be indexed)."""
        change = spb.SetIndexed(key=_key(key), indexed=_flag(indexed, "indexed"))
        self._queue(spb.SchemaChange(set_indexed=change))

    def add_enum_options(self, key: str, values: Sequence[str]) -> None:
        """Append options to an enum key (options are never removed)."""
        options = _options(values, "enum options")
        self._queue(
            spb.SchemaChange(add_enum_options=spb.AddEnumOptions(key=_key(key), values=options))
        )

    def add_embedding(
        self, key: str, size: int, *, required: bool = False, description: str = ""
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise SchemaEditError(f"embedding size must be a positive whole number, not {size!r}")
        change = spb.AddEmbedding(
            key=_key(key),
            size=size,
            constraints=key_constraints(required=required),
            description=_text(description, "description"),
        )
        self._queue(spb.SchemaChange(add_embedding=change))

    def delete_key(self, key: str, hard: bool = False) -> None:
        """Soft delete (restorable, values kept but hidden) or, with `hard`, purge the values
        and reserve the name forever."""
        self._queue(spb.SchemaChange(delete_key=spb.DeleteKey(key=_key(key), hard=hard)))

    def restore_key(self, key: str) -> None:
        self._queue(spb.SchemaChange(restore_key=spb.RestoreKey(key=_key(key))))

    def set_allow_unknown_keys(self, allow: bool) -> None:
        """Whether records may carry keys this schema does not declare."""
        self._queue(spb.SchemaChange(set_options=spb.SetOptions(allow_unknown_keys=bool(allow))))

    def discard_changes(self) -> None:
        self._pending.clear()

    def save(self, *, force: bool = False) -> int:
        """Send the queued edits as one UpdateSchema request; return the new version.

        Raises ConflictError when the schema was saved by someone else since this version
        was read (the queued edits are kept: `refresh()` and `save()` again), and
        FailedPreconditionError (with `.impact`) when stored records would become invalid
        and `force` is not set.
        """
        if not self._pending:
            return self.version
        request = rpb.UpdateSchemaRequest(
            name=self.name, expected_version=self.version, changes=self._pending, force=force
        )
        try:
            response = self._transport.call(self._transport.registry.UpdateSchema, request)
        except ConflictError as error:
            error.add_context(
                f'schema "{self.name}" was changed since version {self.version} was read; '
                "call refresh() to re-fetch the latest version (your queued changes are "
                "kept) and save() again"
            )
            raise
        self._replace(response.schema)
        self._pending.clear()
        return self.version

    def preview(self, *, force: bool = True) -> tuple[list[str], SchemaImpact]:
        """What `save()` would change, and its impact on stored records, without writing."""
        request = rpb.UpdateSchemaRequest(
            name=self.name,
            expected_version=self.version,
            changes=self._pending,
            validate_only=True,
            force=force,
        )
        response = self._transport.call(self._transport.registry.UpdateSchema, request)
        return list(response.applied_changes), SchemaImpact.from_proto(response.impact)

    def refresh(self) -> None:
        """Re-read the latest version, keeping the queued edits."""
        self._replace(MetadataSchema.fetch(self._transport, self.name)._message)

    # --- display -------------------------------------------------------------

    def __str__(self) -> str:
        lines = [f'schema "{self.name}" version {self.version}']
        names = self.keys()
        width = max((len(k) for k in names), default=0)
        for key in names:
            lines.append(f"  {key.ljust(width)}  {self._describe_key(key)}")
            # The description under the type, each of its lines indented alike.
            description = self._keys[key].description
            lines += [f"  {'':{width}}    {line}" for line in description.splitlines()]
        if not names:
            lines.append("  (no keys)")
        if self.allow_unknown_keys:
            lines.append("  (records may carry undeclared keys)")
        if self._pending:
            lines.append(f"  {len(self._pending)} unsaved change(s):")
            lines += [f"    {line}" for line in self.pending_changes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"MetadataSchema(name={self.name!r}, version={self.version}, "
            f"keys={self.keys()!r}, pending_changes={len(self._pending)})"
        )

    # --- helpers -------------------------------------------------------------

    def _describe_key(self, key: str) -> str:
        definition = self._keys[key]
        constraints = describe_constraints(definition)
        return (
            describe_type(definition)
            + (f"  {constraints}" if constraints else "")
            + ("  [indexed]" if definition.indexed else "")
        )

    def _queue(self, change: spb.SchemaChange) -> None:
        self._pending.append(change)

    def _replace(self, message: spb.Schema) -> None:
        self._message = message
        self._keys = {k.key: k for k in message.keys}
        self._json_schema = None
        self._compiled = None

    @staticmethod
    def _is_active(definition: spb.KeyDefinition) -> bool:
        return definition.state in (spb.KEY_STATE_ACTIVE, spb.KEY_STATE_UNSPECIFIED)

    def _definition(self, key: str, *, active: bool = True) -> spb.KeyDefinition:
        definition = self._keys.get(key)
        if definition is None:
            raise KeyError(f'schema "{self.name}" version {self.version} has no key "{key}"')
        if active and not self._is_active(definition):
            state = _STATE_NAMES.get(definition.state, "deleted").replace("_", "-")
            raise KeyError(f'key "{key}" is {state} in schema "{self.name}" v{self.version}')
        return definition

    def _typed(self, key: str, type_name: str) -> spb.KeyDefinition:
        definition = self._definition(key)
        if definition.type != type_name:
            raise TypeError(f'key "{key}" is {describe_type(definition)}, not {type_name}')
        return definition
