"""QueryMetadata/CountMetadata agree with a plain-Python reference evaluator (hypothesis).

Random records are written with random update modes (so the index is maintained
through merge, replace and keep_existing), a key is soft-deleted and restored,
and random filters are rendered with random spelling (quoting, `:`, keyword case,
the `metadata.` prefix). The server's answer, paged to the end, must equal the
reference's, on SQLite and PostgreSQL. The reference knows nothing of the
server's code: it parses date-times with `datetime.fromisoformat`.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metareg.v1 import metadata_pb2 as mpb

from . import builders as b
from .conftest import RunningServer

_schemas = itertools.count()

# key -> (type, indexed)
KEYS: dict[str, tuple[str, bool]] = {
    "s": ("varchar", True),
    "t": ("text", False),
    "n": ("number", True),
    "m": ("number", False),
    "f": ("boolean", True),
    "d": ("datetime", True),
    "e": ("enum", True),
    "sp ace": ("varchar", False),
}
ENUM = ["a", "b", "c"]
STRINGS = ["", "a", "A", "ab", "aB c", "b", "ba", "zeta", "Ω"]
NUMBERS = [-1.5, 0.0, 0.5, 2.0, 10.0]
DATES = ["2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00",
         "2024-05-01T09:59:59.5-00:30", "2023-12-31T23:00:00-01:00"]  # fmt: skip
ORDERABLE = ["s", "t", "n", "m", "d", "f", "sp ace"]


def when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def value_for(key: str) -> st.SearchStrategy[Any]:
    kind = KEYS[key][0]
    return {
        "varchar": st.sampled_from(STRINGS),
        "text": st.sampled_from(STRINGS),
        "number": st.sampled_from(NUMBERS),
        "boolean": st.booleans(),
        "datetime": st.sampled_from(DATES),
        "enum": st.sampled_from(ENUM),
    }[kind]


patches = st.dictionaries(
    st.sampled_from(sorted(KEYS)), st.none() | st.just(0), max_size=5
).flatmap(
    lambda shape: st.fixed_dictionaries(
        {k: st.none() if v is None else value_for(k) for k, v in shape.items()}
    )
)
MODES = [mpb.UPDATE_MODE_MERGE, mpb.UPDATE_MODE_REPLACE, mpb.UPDATE_MODE_KEEP_EXISTING]
writes = st.lists(
    st.tuples(st.sampled_from([f"r{i:02d}" for i in range(24)]), patches, st.sampled_from(MODES)),
    min_size=5,
    max_size=40,
)


def apply_model(model: dict[str, dict[str, Any]], duid: str, patch: dict[str, Any],
                mode: int) -> None:  # fmt: skip
    current = model.get(duid)
    if mode == mpb.UPDATE_MODE_REPLACE:
        model[duid] = {k: v for k, v in patch.items() if v is not None}
    elif mode == mpb.UPDATE_MODE_KEEP_EXISTING:
        model[duid] = {**{k: v for k, v in patch.items() if v is not None}, **(current or {})}
    else:
        merged = dict(current or {})
        for k, v in patch.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        model[duid] = merged


# --- filters: a tree, its rendering, and the reference evaluation ------------------------


@st.composite
def comparison(draw: st.DrawFn) -> tuple[str, ...]:
    key = draw(st.sampled_from(sorted(KEYS)))
    kind = KEYS[key][0]
    ops = ["=", "!=", "IN", "EXISTS"]
    if kind in ("varchar", "text", "number", "datetime"):
        ops += ["<", "<=", ">", ">="]
    if kind in ("varchar", "text"):
        ops.append("~")
    op = draw(st.sampled_from(ops))
    if op == "EXISTS":
        return ("exists", key)
    if op == "IN":
        values = draw(st.lists(value_for(key), min_size=1, max_size=3))
        return ("in", key, *[json.dumps(v) for v in values])
    if op == "~":
        needle = draw(st.sampled_from(["a", "A", "b c", "", "Ω", "zz"]))
        return ("cmp", key, "~", json.dumps(needle))
    return ("cmp", key, op, json.dumps(draw(value_for(key))))


filters = st.recursive(
    comparison(),
    lambda inner: st.one_of(
        st.tuples(st.just("and"), inner, inner),
        st.tuples(st.just("or"), inner, inner),
        st.tuples(st.just("not"), inner),
    ),
    max_leaves=5,
)


def render_key(key: str, draw: st.DrawFn) -> str:
    name = f"`{key}`" if " " in key or draw(st.booleans()) else key
    return f"metadata.{name}" if name == key and draw(st.booleans()) else name


def render_literal(raw: str, draw: st.DrawFn) -> str:
    value = json.loads(raw)
    if isinstance(value, bool):
        return draw(st.sampled_from(["true", "TRUE"] if value else ["false", "False"]))
    if isinstance(value, float):
        return repr(value)
    if draw(st.booleans()) and "'" not in value:
        return "'" + value.replace("\\", "\\\\") + "'"
    return json.dumps(value)  # double quotes with JSON escapes (\uXXXX for Ω)


def render(node: tuple[Any, ...], draw: st.DrawFn) -> str:
    kind = node[0]
    if kind == "and":
        word = draw(st.sampled_from(["AND", "and"]))
        return f"({render(node[1], draw)} {word} {render(node[2], draw)})"
    if kind == "or":
        return f"({render(node[1], draw)} OR {render(node[2], draw)})"
    if kind == "not":
        return f"NOT {render(node[1], draw)}"
    key = render_key(node[1], draw)
    if kind == "exists":
        return f"{key} EXISTS"
    if kind == "in":
        return f"{key} IN ({', '.join(render_literal(v, draw) for v in node[2:])})"
    op = ":" if node[2] == "=" and draw(st.booleans()) else node[2]
    return f"{key} {op} {render_literal(node[3], draw)}"


def comparable(key: str, value: Any) -> Any:
    return when(value) if KEYS[key][0] == "datetime" else value


def evaluate(node: tuple[Any, ...], record: dict[str, Any]) -> bool:
    kind = node[0]
    if kind == "and":
        return evaluate(node[1], record) and evaluate(node[2], record)
    if kind == "or":
        return evaluate(node[1], record) or evaluate(node[2], record)
    if kind == "not":
        return not evaluate(node[1], record)
    key = node[1]
    if key not in record:
        return False
    if kind == "exists":
        return True
    actual = comparable(key, record[key])
    if kind == "in":
        return any(actual == comparable(key, json.loads(v)) for v in node[2:])
    op, expected = node[2], comparable(key, json.loads(node[3]))
    if op == "~":
        lower = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
        return expected.translate(lower) in actual.translate(lower)
    return bool({"=": actual == expected, "!=": actual != expected, "<": actual < expected,
                 "<=": actual <= expected, ">": actual > expected,
                 ">=": actual >= expected}[op])  # fmt: skip


def reference_order(model: dict[str, dict[str, Any]], ids: list[str], key: str | None,
                    descending: bool) -> list[str]:  # fmt: skip
    if key is None:
        return sorted(ids)
    having = [d for d in ids if key in model[d]]
    lacking = sorted(d for d in ids if key not in model[d])
    ordered = sorted(having, key=lambda d: (comparable(key, model[d][key]), d), reverse=descending)
    return ordered + lacking


def server_ids(server: RunningServer, schema: str, filter_text: str, order_by: str,
               size: int) -> list[str]:  # fmt: skip
    ids: list[str] = []
    token = ""
    for _ in range(100):
        page = server.metadata.QueryMetadata(mpb.QueryMetadataRequest(
            schema=schema, filter=filter_text, order_by=order_by, page_size=size,
            page_token=token))  # fmt: skip
        ids += [r.data_unit_id for r in page.records]
        token = page.next_page_token
        if not token:
            return ids
    raise AssertionError("paging did not end")


@pytest.fixture(params=["default plans", "tiny limits"])
def planner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """With tiny limits every query walks an index or scans, across many small chunks."""
    if request.param == "tiny limits":
        from metareg.server.service import query

        monkeypatch.setattr(query, "DRIVER_LIMIT", 2)
        monkeypatch.setattr(query, "COUNT_CANDIDATE_LIMIT", 2)
        monkeypatch.setattr(query, "CHUNK", 3)
    return str(request.param)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), history=writes)  # fmt: skip
def test_queries_match_the_reference(
    server: RunningServer,
    planner: str,
    data: st.DataObject,
    history: list[tuple[str, dict[str, Any], int]],
) -> None:
    schema = f"q{next(_schemas)}"
    changes = [
        b.add_enum(k, ENUM) if kind == "enum" else b.add_scalar(k, kind)
        for k, (kind, _) in KEYS.items()
    ]
    b.update_schema(server.registry, schema, 0, *changes)
    indexing = [b.spb.SchemaChange(set_indexed=b.spb.SetIndexed(key=k, indexed=True))
                for k, (_, indexed) in KEYS.items() if indexed]  # fmt: skip
    half = len(history) // 2
    model: dict[str, dict[str, Any]] = {}
    for step, (duid, patch, mode) in enumerate(history):
        if step == half:  # index built over existing data, then maintained by writes
            b.update_schema(server.registry, schema, 1, *indexing)
        server.metadata.ApplyBundle(mpb.ApplyBundleRequest(
            schema=schema, updates=[b.metadata_update(duid, patch, mode)]))  # fmt: skip
        apply_model(model, duid, patch, mode)
    b.update_schema(server.registry, schema, 2, b.delete_key("s"))
    b.update_schema(server.registry, schema, 3, b.restore_key("s"))
    for _ in range(4):
        tree = data.draw(filters)
        text = render(tree, data.draw)
        order_key = data.draw(st.none() | st.sampled_from(ORDERABLE))
        descending = data.draw(st.booleans())
        order_by = "" if order_key is None else (
            f"`{order_key}`" + (" desc" if descending else " asc"))  # fmt: skip
        expected = reference_order(
            model, [d for d, r in model.items() if evaluate(tree, r)], order_key, descending
        )
        size = data.draw(st.sampled_from([1, 3, 7, 1000]))
        got = server_ids(server, schema, text, order_by, size)
        assert got == expected, (text, order_by)
        count = server.metadata.CountMetadata(
            mpb.CountMetadataRequest(schema=schema, filter=text)
        ).count
        assert count == len(expected), text
