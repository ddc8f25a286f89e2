"""Turn per-record problems into addressed field violations and request errors."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .bundle import BundlePlan, Outcome
from .errors import FieldViolation, InvalidMetadata
from .names import MAX_KEY_LENGTH, shorten
from .validator import Problem

MESSAGE_EXAMPLES = 3


def field_path(collection: str, index: int, problem: Problem) -> str:
    """The request field a problem points at, e.g. `updates[3].metadata["score"]`."""
    if problem.key:
        key = problem.key
        if len(key) > MAX_KEY_LENGTH:  # an invalid key name, too long to repeat whole
            key = key[:MAX_KEY_LENGTH] + "…"
        return f"{collection}[{index}].metadata[{json.dumps(key)}]"
    if problem.rule == "data_unit_id":
        return f"{collection}[{index}].data_unit_id"
    return f"{collection}[{index}]"


def describe_problem(index: int, data_unit_id: str, problem: Problem) -> str:
    return f"record {index} (data_unit_id {shorten(data_unit_id)}): {problem.describe()}"


def violations_for(
    collection: str, index: int, data_unit_id: str, problems: Sequence[Problem]
) -> list[FieldViolation]:
    return [
        FieldViolation(
            field_path(collection, index, p), describe_problem(index, data_unit_id, p), p.rule
        )
        for p in problems
    ]


def bundle_rejection(plan: BundlePlan) -> InvalidMetadata:
    """The error for an atomic bundle with invalid updates: nothing was written."""
    violations: list[FieldViolation] = []
    for result in plan.results:
        if result.outcome is Outcome.REJECTED:
            violations += violations_for(
                "updates", result.index, result.data_unit_id, result.problems
            )
    rejected = plan.count(Outcome.REJECTED)
    examples = "; ".join(v.description for v in violations[:MESSAGE_EXAMPLES])
    more = len(violations) - MESSAGE_EXAMPLES
    message = (
        f"bundle rejected, nothing was written: {rejected} of {len(plan.results)} updates "
        f"are invalid ({len(violations)} violations). {examples}"
        + (f"; and {more} more" if more > 0 else "")
    )
    return InvalidMetadata(message, violations, detail=plan)


def patch_rejection(problems: Sequence[Problem]) -> InvalidMetadata:
    """The error for an UpdateByFilter patch that breaks a rule by itself."""
    violations = [
        FieldViolation(
            f"metadata[{json.dumps(p.key)}]" if p.key else "metadata",
            f"patch: {p.describe()}",
            p.rule,
        )
        for p in problems
    ]
    return InvalidMetadata(
        "the patch is invalid, nothing was written: "
        + "; ".join(v.description for v in violations),
        violations,
    )


def filter_update_rejection(plan: BundlePlan) -> InvalidMetadata:
    """The error for a patch that some matching records cannot take (e.g. their size)."""
    violations = [
        FieldViolation("metadata", f"record {shorten(r.data_unit_id)}: {p.describe()}", p.rule)
        for r in plan.results
        if r.outcome is Outcome.REJECTED
        for p in r.problems
    ]
    examples = "; ".join(v.description for v in violations[:MESSAGE_EXAMPLES])
    return InvalidMetadata(
        f"the patch would make {len(violations)} matching record(s) invalid, nothing was "
        f"written: {examples}",
        violations,
    )
