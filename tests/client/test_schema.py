"""MetadataSchema: local editing, one UpdateSchema per save, conflicts, display, export."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metareg.client import (
    Client,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    SchemaEditError,
)

from .conftest import CallRecorder

_names = itertools.count()


def test_a_new_schema_is_version_0_and_save_creates_version_1(
    client: Client, recorder: CallRecorder
) -> None:
    schema = client.schema("fresh")
    assert (schema.version, schema.keys(), schema.to_dict()) == (0, [], {})
    assert schema.history() == []
    assert schema.save() == 0  # nothing queued: no request
    assert recorder.methods("UpdateSchema") == []
    schema.add_scalar("a", data_type="string")
    schema.add_scalar("b", "varchar", max_length=64)
    schema.add_enum("w", values=["x"])
    assert schema.pending_changes[0] == "add_scalar(key='a', type='string')"
    assert schema.keys() == []  # getters show the saved version until save()
    assert schema.save() == 1
    assert len(recorder.requests("UpdateSchema")) == 1
    request = recorder.requests("UpdateSchema")[0]
    assert (request.expected_version, len(request.changes)) == (0, 3)
    assert schema.get_key_type("a") == "varchar"
    assert schema.to_dict() == {
        "a": "varchar",
        "b": {"type": "varchar", "max_length": 64},
        "w": {"type": "enum", "values": ["x"]},
    }
    assert schema.pending_changes == []


def test_a_concurrent_save_raises_conflict_error(client: Client) -> None:
    client.import_schema_from_dict("cams", {"a": "text"})
    mine, theirs = client.schema("cams"), client.schema("cams")
    theirs.add_scalar("b", "number")
    assert theirs.save() == 2
    mine.add_scalar("c", "boolean")
    with pytest.raises(ConflictError) as caught:
        mine.save()
    assert caught.value.code.name == "ABORTED"
    assert "refresh()" in str(caught.value)
    assert "is at version 2, not the expected version 1" in str(caught.value)
    assert client.schema("cams").keys() == ["a", "b"]  # nothing of mine was written
    mine.refresh()  # re-fetch; the queued change is kept
    assert mine.version == 2
    assert mine.save() == 3
    assert mine.keys() == ["a", "b", "c"]


def test_local_mistakes_fail_before_any_request(client: Client, recorder: CallRecorder) -> None:
    schema = client.schema("cams")
    with pytest.raises(SchemaEditError, match="unknown type 'strnig'; valid scalar types: varchar"):
        schema.add_scalar("a", data_type="strnig")
    with pytest.raises(SchemaEditError, match="use add_enum"):
        schema.add_scalar("a", data_type="enum")
    with pytest.raises(SchemaEditError, match="must not be empty"):
        schema.add_enum("w", values=[])
    with pytest.raises(SchemaEditError, match="list of option strings"):
        schema.add_enum("w", values="sunny")
    with pytest.raises(SchemaEditError, match="positive whole number"):
        schema.add_embedding("e", size=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty string"):
        schema.delete_key("")
    assert schema.pending_changes == []
    assert recorder.methods() == ["GetSchema"]


def test_the_server_stays_the_authority(client: Client) -> None:
    schema = client.schema("cams")
    schema.add_scalar("bad/key", "text")
    schema.add_embedding("big", size=4097)
    with pytest.raises(InvalidArgumentError) as caught:
        schema.save()
    fields = [v.field for v in caught.value.violations]
    assert fields == ["changes[0]", "changes[1]"]
    assert "4097 is out of range 1..4096" in caught.value.violations[1].description
    assert len(schema.pending_changes) == 2  # kept, to fix and retry


def test_str_lists_sorted_keys_and_hides_deleted_ones(client: Client) -> None:
    client.import_schema_from_dict(
        "cams",
        {"zeta": "number", "alpha": {"type": "varchar", "max_length": 8}, "gone": "text",
         "clip": {"type": "embedding", "size": 3}},
    )  # fmt: skip
    schema = client.schema("cams")
    schema.delete_key("gone")
    schema.save()
    text = str(schema)
    assert text.splitlines() == [
        'schema "cams" version 2',
        "  alpha  varchar(8)",
        "  clip   embedding(3)",
        "  zeta   number",
    ]
    assert "gone" not in repr(schema)
    assert repr(schema).startswith("MetadataSchema(name='cams', version=2")
    assert schema.keys(include_deleted=True) == ["alpha", "clip", "gone", "zeta"]
    assert schema.key_state("gone") == "soft_deleted"
    with pytest.raises(KeyError, match="soft-deleted"):
        schema.get_key_type("gone")
    with pytest.raises(TypeError, match="not enum"):
        schema.get_enum_options("zeta")
    schema.add_scalar("new", "text")
    assert "1 unsaved change(s)" in str(schema)


def test_incompatible_changes_need_force(client: Client) -> None:
    client.import_schema_from_dict("cams", {"s": "text"})
    client.apply("cams", {"u1": {"s": "abcdef"}, "u2": {"s": "ab"}})
    schema = client.schema("cams")
    schema.set_scalar("s", "varchar", max_length=3)
    changes, impact = schema.preview()
    assert changes == ["set_scalar s text -> varchar(3)"]
    assert (impact.invalid_records, impact.sample_data_unit_ids) == (1, ("u1",))
    with pytest.raises(FailedPreconditionError) as caught:
        schema.save()
    assert caught.value.impact is not None
    assert caught.value.impact.invalid_records_by_key == {"s": 1}
    assert [p.subject for p in caught.value.precondition_failures] == ['metadata["s"]']
    assert schema.save(force=True) == 2
    assert client.get_metadata("cams", ["u1", "u2"]) == {"u1": {}, "u2": {"s": "ab"}}


def test_offline_validation_uses_the_exported_json_schema(client: Client) -> None:
    client.import_schema_from_dict(
        "cams",
        {"v": {"type": "varchar", "max_length": 3}, "n": "number", "at": "datetime",
         "w": {"type": "enum", "values": ["sunny"]}, "clip": {"type": "embedding", "size": 2}},
    )  # fmt: skip
    schema = client.schema("cams")
    assert schema.validate({"v": "abc", "n": 1, "at": "2024-05-01T12:00:00Z", "clip": (1, 2)}) == []
    [nested] = schema.validate({"capture": {"v": "x"}})
    assert (nested.key, nested.rule) == ("capture", "value")
    [flattened] = schema.validate({"capture": {"v": "x"}}, flatten_nested=True)
    assert (flattened.key, flattened.rule) == ("capture.v", "unknown_key")
    found = schema.validate(
        {"v": "toolong", "n": True, "at": "yesterday", "w": "rain", "clip": [1.0], "extra": 1}
    )
    assert sorted((v.key, v.rule) for v in found) == [
        ("at", "format"), ("clip", "minItems"), ("extra", "unknown_key"), ("n", "type"),
        ("v", "maxLength"), ("w", "enum"),
    ]  # fmt: skip
    assert all(v.field.startswith("metadata[") for v in found)


def test_indexing_survives_save_fetch_export_and_import(
    client: Client, recorder: CallRecorder
) -> None:
    schema = client.schema("idx")
    schema.add_scalar("cam", "varchar", max_length=32, indexed=True)
    schema.add_scalar("score", "number", indexed=True)
    schema.add_scalar("note", "text")
    schema.add_enum("weather", values=["sunny", "rain"], indexed=True)
    schema.add_embedding("clip", size=2)
    assert "indexed=True" in schema.pending_changes[0]
    assert schema.save() == 1
    fetched = client.schema("idx")
    names = fetched.keys()
    assert {k: fetched.is_indexed(k) for k in names} == {
        "cam": True, "clip": False, "note": False, "score": True, "weather": True,
    }  # fmt: skip
    assert str(fetched).splitlines()[1:] == [
        "  cam      varchar(32)  [indexed]",
        "  clip     embedding(2)",
        "  note     text",
        "  score    number  [indexed]",
        "  weather  enum(sunny, rain)  [indexed]",
    ]
    exported = fetched.to_dict()
    assert exported == {
        "cam": {"type": "varchar", "max_length": 32, "indexed": True},
        "clip": {"type": "embedding", "size": 2},
        "note": "text",
        "score": {"type": "number", "indexed": True},
        "weather": {"type": "enum", "values": ["sunny", "rain"], "indexed": True},
    }
    assert fetched.key_info("score") == {"type": "number", "indexed": True, "state": "active"}
    client.import_schema_from_dict("idx-copy", exported)
    assert client.schema("idx-copy").to_dict() == exported
    assert not client.import_schema_from_dict("idx", exported).changed

    fetched.set_scalar("score", "number", indexed=None)  # keeps the index
    fetched.set_scalar("cam", "varchar", max_length=64)  # so does leaving it out
    fetched.set_indexed("note")
    fetched.set_indexed("weather", False)
    assert fetched.save() == 2
    again = client.schema("idx")
    names = again.keys()
    assert [k for k in names if again.is_indexed(k)] == ["cam", "note", "score"]
    assert again.to_dict()["note"] == {"type": "text", "indexed": True}
    assert again.to_dict()["weather"] == {"type": "enum", "values": ["sunny", "rain"]}
    again.set_scalar("score", "number", indexed=False)
    assert again.save() == 3
    assert not client.schema("idx").is_indexed("score")
    changes = [r.changes for r in recorder.requests("UpdateSchema")]
    assert changes[1][0].set_scalar.HasField("indexed") is False  # None sends nothing
    assert changes[1][2].set_indexed.indexed is True


def test_indexing_mistakes(client: Client) -> None:
    schema = client.schema("idx")
    with pytest.raises(SchemaEditError, match="indexed must be True or False"):
        schema.add_scalar("a", "number", indexed="yes")  # type: ignore[arg-type]
    schema.add_embedding("clip", size=2)
    schema.save()
    schema.set_indexed("clip")
    with pytest.raises(InvalidArgumentError, match="embedding keys cannot be indexed"):
        schema.save()
    with pytest.raises(KeyError):
        schema.is_indexed("missing")


def indexable(entry: str | dict[str, object], indexed: bool) -> str | dict[str, object]:
    """`entry` in the full form with "indexed": true, when `indexed`."""
    if not indexed:
        return entry
    return {**({"type": entry} if isinstance(entry, str) else entry), "indexed": True}


document_entries = st.one_of(
    st.builds(
        indexable,
        st.sampled_from(["varchar", "text", "number", "boolean", "datetime", "uuid"]),
        st.booleans(),
    ),
    st.builds(
        lambda n, indexed: indexable({"type": "varchar", "max_length": n}, indexed),
        st.integers(1, 8191),
        st.booleans(),
    ),
    st.builds(
        lambda values, indexed: indexable({"type": "enum", "values": values}, indexed),
        st.lists(st.text("abcxyz-_ ", min_size=1, max_size=8), min_size=1, max_size=5, unique=True),
        st.booleans(),
    ),
    st.builds(lambda n: {"type": "embedding", "size": n}, st.integers(1, 4096)),
)
key_names = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,10}", fullmatch=True).filter(
    lambda k: k != "keyframes"
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=st.dictionaries(key_names, document_entries, min_size=1, max_size=8))
def test_to_dict_and_import_round_trip(client: Client, document: dict[str, object]) -> None:
    name = f"round{next(_names)}"
    client.import_schema_from_dict(name, document)
    schema = client.schema(name)
    exported = schema.to_dict()
    indexed = {k for k, e in document.items() if isinstance(e, dict) and e.get("indexed")}
    names = schema.keys()
    assert {k for k in names if schema.is_indexed(k)} == indexed
    copy = f"{name}-copy"
    client.import_schema_from_dict(copy, exported)
    assert client.schema(copy).to_dict() == exported
    again = client.import_schema_from_dict(name, exported)
    assert not again.changed  # importing the export changes nothing
    assert again.version == 1
