"""Update modes match a reference model on random bundle sequences (hypothesis).

merge is RFC 7386 (JSON Merge Patch), implemented here from the RFC's own
pseudocode for general JSON values; a metadata record is the flat case.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metareg.server.domain.bundle import UpdateMode, apply_update
from metareg.v1 import metadata_pb2 as mpb

from . import builders as b
from .conftest import RunningServer

MODES = {"merge": mpb.UPDATE_MODE_MERGE, "replace": mpb.UPDATE_MODE_REPLACE,
         "keep_existing": mpb.UPDATE_MODE_KEEP_EXISTING, "default": 0}  # fmt: skip
_schemas = itertools.count()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2, verbatim in Python."""
    if isinstance(patch, dict):
        if not isinstance(target, dict):
            target = {}
        target = dict(target)
        for name, value in patch.items():
            if value is None:
                target.pop(name, None)
            else:
                target[name] = merge_patch(target.get(name), value)
        return target
    return patch


def reference(current: dict[str, Any] | None, patch: dict[str, Any], mode: str) -> dict[str, Any]:
    if mode in ("merge", "default"):
        return merge_patch(current or {}, patch)  # type: ignore[no-any-return]
    if mode == "replace":
        return {k: v for k, v in patch.items() if v is not None}
    result = dict(current or {})
    for key, value in patch.items():
        if value is not None and key not in result:
            result[key] = value
    return result


patches = st.dictionaries(
    st.sampled_from(["a", "n", "t", "v"]),
    st.none() | st.sampled_from(["x", "y"]),
    max_size=4,
).map(lambda p: {k: ([1.0, 2.0] if k == "v" and v == "x" else [3.0, 4.0] if k == "v" and v
                     else 1.0 if k == "n" and v == "x" else 2.0 if k == "n" and v else v)
                 for k, v in p.items()})  # fmt: skip
updates = st.tuples(st.sampled_from(["d1", "d2", "d3"]), patches, st.sampled_from(sorted(MODES)))
bundles = st.lists(st.lists(updates, min_size=1, max_size=5), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    history=st.lists(
        st.tuples(patches, st.sampled_from(["merge", "replace", "keep_existing"])), max_size=8
    )
)
def test_domain_apply_update_matches_the_reference(history: list[tuple[dict[str, Any], str]]
                                                   ) -> None:  # fmt: skip
    current: dict[str, Any] | None = None
    expected: dict[str, Any] | None = None
    for patch, mode in history:
        current = apply_update(current, patch, UpdateMode(mode))
        expected = reference(expected, patch, mode)
        assert current == expected


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(history=bundles)
def test_server_matches_the_reference_model(
    server: RunningServer, history: list[list[tuple[str, dict[str, Any], str]]]
) -> None:
    name = f"merge{next(_schemas)}"
    b.update_schema(server.registry, name, 0, b.add_scalar("a", "varchar"),
                    b.add_scalar("n", "number"), b.add_scalar("t", "text"),
                    b.add_embedding("v", 2))  # fmt: skip
    model: dict[str, dict[str, Any]] = {}
    revisions: dict[str, int] = {}
    for bundle in history:
        response = server.metadata.ApplyBundle(mpb.ApplyBundleRequest(
            schema=name,
            updates=[b.metadata_update(duid, patch, MODES[mode]) for duid, patch, mode in bundle],
        ))  # fmt: skip
        for (duid, patch, mode), result in zip(bundle, response.results, strict=True):
            after = reference(model.get(duid), patch, mode)
            if duid not in model or after != model[duid]:
                revisions[duid] = revisions.get(duid, 0) + 1
                assert result.outcome == mpb.UPDATE_OUTCOME_APPLIED
            else:
                assert result.outcome == mpb.UPDATE_OUTCOME_UNCHANGED
            assert result.revision == revisions[duid]
            model[duid] = after
        got = server.metadata.GetMetadata(
            mpb.GetMetadataRequest(schema=name, data_unit_ids=sorted(model))
        )
        assert {r.data_unit_id: {k: b.python_value(v) for k, v in r.metadata.items()}
                for r in got.records} == model  # fmt: skip
        assert {r.data_unit_id: r.revision for r in got.records} == revisions
