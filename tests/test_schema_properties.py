"""Any sequence of valid changes yields versions 1..N, each readable exactly (hypothesis).

The expected states come from a small reference model written here, independent
of the server's evolution code.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metareg.v1 import schema_pb2 as spb

from . import builders as b
from .conftest import RunningServer

SCALARS = {
    "varchar": "varchar",
    "string": "varchar",
    "text": "text",
    "long_string": "text",
    "number": "number",
    "boolean": "boolean",
    "datetime": "datetime",
    "uuid": "uuid",
}
KEY_POOL = ["a", "B", "c.d", "e f", "g-h", "i_j", "k9", "teamA.score"]
_names = itertools.count()


@dataclass(frozen=True)
class ModelKey:
    type: str
    max_length: int = 0
    options: tuple[str, ...] = ()
    size: int = 0
    state: int = spb.KEY_STATE_ACTIVE
    description: str = ""
    required: bool = False


@dataclass
class Model:
    keys: dict[str, ModelKey] = field(default_factory=dict)
    allow_unknown: bool = False

    def snapshot(self) -> tuple[dict[str, ModelKey], bool]:
        return dict(self.keys), self.allow_unknown


def scalar_key(type_name: str, max_length: int | None) -> ModelKey:
    canonical = SCALARS[type_name]
    if canonical == "varchar":
        return ModelKey("varchar", max_length or 8192)
    return ModelKey(canonical)


@st.composite
def valid_change(draw: st.DrawFn, model: Model) -> spb.SchemaChange:
    """A change that is valid for `model` and alters it; applies it to `model`."""
    free = [k for k in KEY_POOL if k not in model.keys]
    active = [k for k, d in model.keys.items() if d.state == spb.KEY_STATE_ACTIVE]
    soft = [k for k, d in model.keys.items() if d.state == spb.KEY_STATE_SOFT_DELETED]
    scalars = [k for k in active + soft if model.keys[k].type not in ("enum", "embedding")]
    enums = [k for k in active if model.keys[k].type == "enum"]
    kinds = ["options"]
    kinds += ["add_scalar", "add_enum", "add_embedding"] if free else []
    kinds += ["set_scalar"] if scalars else []
    kinds += ["add_options"] if enums else []
    kinds += ["soft", "hard"] if active else []
    kinds += ["restore", "hard_soft"] if soft else []
    kinds += ["describe"] if active + soft else []
    kinds += ["require"] if active else []
    kind = draw(st.sampled_from(kinds))
    if kind == "describe":
        key = draw(st.sampled_from(active + soft))
        old = model.keys[key].description
        text = draw(st.text("ab \n\té", max_size=5).filter(lambda t: t != old))
        model.keys[key] = replace(model.keys[key], description=text)
        return b.set_description(key, text)
    if kind == "require":
        key = draw(st.sampled_from(active))
        required = not model.keys[key].required
        model.keys[key] = replace(model.keys[key], required=required)
        return b.set_constraints(key, required=required)
    if kind == "add_scalar":
        key, type_name = draw(st.sampled_from(free)), draw(st.sampled_from(sorted(SCALARS)))
        length = draw(st.none() | st.integers(1, 8192)) if SCALARS[type_name] == "varchar" else None
        model.keys[key] = scalar_key(type_name, length)
        return b.add_scalar(key, type_name, length)
    if kind == "set_scalar":
        key = draw(st.sampled_from(scalars))
        type_name = draw(st.sampled_from(sorted(SCALARS)))
        length = draw(st.none() | st.integers(1, 8192)) if SCALARS[type_name] == "varchar" else None
        old = model.keys[key]
        kept = {"description": old.description, "required": old.required}  # set_scalar keeps
        target = replace(scalar_key(type_name, length), **kept)
        if target == old:  # would alter nothing: make it a real change
            type_name, target = "boolean", ModelKey("boolean", **kept)
            if old == target:
                type_name, target, length = "text", ModelKey("text", **kept), None
        model.keys[key] = target
        return b.set_scalar(key, type_name, length)
    if kind == "add_enum":
        key = draw(st.sampled_from(free))
        options = draw(
            st.lists(st.text("xyz", min_size=1, max_size=3), min_size=1, max_size=5, unique=True)
        )
        model.keys[key] = ModelKey("enum", options=tuple(options))
        return b.add_enum(key, options)
    if kind == "add_options":
        key = draw(st.sampled_from(enums))
        existing = model.keys[key].options
        new = draw(
            st.lists(
                st.text("pqr", min_size=1, max_size=3).filter(lambda o: o not in existing),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
        model.keys[key] = replace(model.keys[key], options=existing + tuple(new))
        return b.add_enum_options(key, new)
    if kind == "add_embedding":
        key, size = draw(st.sampled_from(free)), draw(st.integers(1, 4096))
        model.keys[key] = ModelKey("embedding", size=size)
        return b.add_embedding(key, size)
    if kind in ("soft", "hard", "hard_soft"):
        key = draw(st.sampled_from(soft if kind == "hard_soft" else active))
        hard = kind != "soft"
        state = spb.KEY_STATE_HARD_DELETED if hard else spb.KEY_STATE_SOFT_DELETED
        model.keys[key] = replace(model.keys[key], state=state)
        return b.delete_key(key, hard=hard)
    if kind == "restore":
        key = draw(st.sampled_from(soft))
        model.keys[key] = replace(model.keys[key], state=spb.KEY_STATE_ACTIVE)
        return b.restore_key(key)
    model.allow_unknown = not model.allow_unknown
    return b.set_options(model.allow_unknown)


def as_model(schema: spb.Schema) -> tuple[dict[str, ModelKey], bool]:
    keys = {
        k.key: ModelKey(
            k.type,
            k.max_length,
            tuple(k.enum_options),
            k.embedding_size,
            k.state,
            k.description,
            k.constraints.required,
        )
        for k in schema.keys
    }
    return keys, schema.allow_unknown_keys


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), steps=st.integers(1, 12))
def test_versions_replay_the_change_history(
    server: RunningServer, data: st.DataObject, steps: int
) -> None:
    name = f"prop{next(_names)}"
    model = Model()
    snapshots = []
    for version in range(1, steps + 1):
        change = data.draw(valid_change(model))
        response = b.update_schema(server.registry, name, version - 1, change)
        assert response.changed
        assert response.schema.version == version
        snapshots.append(model.snapshot())
    for version, expected in enumerate(snapshots, start=1):
        assert as_model(b.get_schema(server.registry, name, version)) == expected
    assert b.get_schema(server.registry, name).version == steps
