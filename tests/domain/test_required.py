"""The `required` rule agrees with the merge model (hypothesis): a required key is
reported exactly when the record that `apply_update` (or a new record) produces lacks
it, in every mode, and the chain of ValidateMetadata's records agrees with
`plan_bundle`, which applies them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from metareg.server.domain import evolution as ev
from metareg.server.domain.bundle import (
    MetadataUpdate,
    Outcome,
    RequiredKeyChain,
    StoredRecord,
    UpdateMode,
    apply_update,
    check_update,
    missing_required,
    plan_bundle,
    without_nulls,
)
from metareg.server.domain.schema import KeyConstraints, SchemaState
from metareg.server.domain.validator import CompiledValidator

REQUIRED = ("a", "b")
KEYS = ["a", "b", "c"]
STATE = ev.apply_changes(SchemaState(), [
    ev.AddScalar(k, "number", constraints=KeyConstraints(required=k in REQUIRED)) for k in KEYS
]).after  # fmt: skip
VALIDATOR = CompiledValidator("req", 1, STATE)

records = st.dictionaries(st.sampled_from(KEYS), st.just(1.0))
patches = st.dictionaries(st.sampled_from(KEYS), st.sampled_from([2.0, None]))
modes = st.sampled_from(list(UpdateMode))


@settings(max_examples=400, deadline=None)
@given(current=st.none() | records, patch=patches, mode=modes)
def test_missing_required_is_what_the_update_leaves_out(
    current: dict[str, object] | None, patch: dict[str, object], mode: UpdateMode
) -> None:
    after = without_nulls(patch) if current is None else apply_update(current, patch, mode)
    reported = [p.key for p in missing_required(REQUIRED, current, patch, mode)]
    assert reported == [k for k in REQUIRED if k not in after]
    assert all(p.rule == "required" for p in missing_required(REQUIRED, current, patch, mode))


@settings(max_examples=300, deadline=None)
@given(
    stored=st.dictionaries(st.sampled_from(["x", "y"]), records),
    updates=st.lists(st.tuples(st.sampled_from(["x", "y", "z"]), patches, modes), max_size=6),
)
def test_the_validation_chain_agrees_with_the_bundle_plan(
    stored: dict[str, dict[str, object]], updates: list[tuple[str, dict[str, object], UpdateMode]]
) -> None:
    existing = {duid: StoredRecord(duid, dict(values), 1, 1) for duid, values in stored.items()}
    batch = [MetadataUpdate(duid, patch, mode) for duid, patch, mode in updates]
    plan = plan_bundle(VALIDATOR, batch, existing, partial=True)
    chain = RequiredKeyChain(VALIDATOR.required, stored)
    for update, result in zip(batch, plan.results, strict=True):
        patch, problems = check_update(VALIDATOR, update, coerce_strings=False)
        lacking = chain.check(update.data_unit_id, patch, update.mode, problems)
        assert bool(lacking) == (result.outcome is Outcome.REJECTED), (update, result)
