"""Evaluate a checked filter on one record's stored values."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from .checker import (
    AllOf,
    Among,
    AnyOf,
    Checked,
    Compare,
    Contains,
    Negation,
    Present,
    ascii_lower,
)


def matches(node: Checked | None, values: Mapping[str, object],
            embedding_keys: Collection[str] = ()) -> bool:  # fmt: skip
    """True when the record matches. A comparison on an absent key is false.

    `values` are the record's scalar values; `embedding_keys` names the
    embeddings it holds (only EXISTS looks at those).
    """
    if node is None:
        return True
    match node:
        case Compare(key=key, operator=op, value=expected):
            actual = values.get(key)
            if actual is None:
                return False
            if op == "=":
                return actual == expected
            if op == "!=":
                return actual != expected
            if op == "<":
                return actual < expected  # type: ignore[operator]
            if op == "<=":
                return actual <= expected  # type: ignore[operator]
            if op == ">":
                return actual > expected  # type: ignore[operator]
            return actual >= expected  # type: ignore[operator]
        case Among(key=key, values=options):
            actual = values.get(key)
            return actual is not None and actual in options
        case Present(key=key):
            return key in values or key in embedding_keys
        case Contains(key=key, needle=needle):
            actual = values.get(key)
            return isinstance(actual, str) and needle in ascii_lower(actual)
        case AllOf(items=items):
            return all(matches(item, values, embedding_keys) for item in items)
        case AnyOf(items=items):
            return any(matches(item, values, embedding_keys) for item in items)
        case Negation(item=item):
            return not matches(item, values, embedding_keys)
    raise AssertionError(node)  # pragma: no cover


def references_embeddings(node: Checked | None) -> bool:
    """Whether evaluating the filter needs to know which embeddings a record holds."""
    match node:
        case Present(definition=definition):
            return definition is not None and definition.type.value == "embedding"
        case AllOf(items=items) | AnyOf(items=items):
            return any(references_embeddings(item) for item in items)
        case Negation(item=item):
            return references_embeddings(item)
    return False
