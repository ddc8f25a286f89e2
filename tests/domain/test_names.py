"""Key and schema naming rules, checked against an independent reference (hypothesis)."""

from __future__ import annotations

import re
import string

from hypothesis import given
from hypothesis import strategies as st

from metareg.server.domain.names import (
    KEY_NAME_PATTERN,
    data_unit_id_problem,
    key_name_problem,
    schema_name_problem,
)

ALLOWED = set(string.ascii_letters + string.digits + " -_.")


def reference_key_ok(key: str) -> bool:
    return (
        1 <= len(key) <= 256
        and all(c in ALLOWED for c in key)
        and any(c in string.ascii_letters + string.digits for c in key)
        and not key.startswith(" ")
        and not key.endswith(" ")
    )


keys = st.one_of(
    st.text(alphabet=" -_.aZ09", max_size=12),
    st.text(alphabet=" -_.aZ09/$é\n\t", max_size=12),
    st.text(max_size=6),
    st.integers(250, 260).map(lambda n: "k" * n),
    st.integers(250, 260).map(lambda n: "k" * (n - 1) + " "),
)


@given(keys)
def test_key_rule_matches_reference(key: str) -> None:
    expected = reference_key_ok(key) and key != "keyframes"
    assert (key_name_problem(key) is None) == expected


@given(keys)
def test_exported_pattern_matches_the_rule(key: str) -> None:
    # The JSON Schema propertyNames pattern (used offline) must agree with the server.
    matches = re.search(KEY_NAME_PATTERN, key) is not None
    assert matches == (key_name_problem(key, allow_reserved=True) is None)


def test_keyframes_is_reserved_only_for_declaration() -> None:
    assert "reserved" in (key_name_problem("keyframes") or "")
    assert key_name_problem("keyframes", allow_reserved=True) is None
    assert key_name_problem("Keyframes") is None  # keys are case-sensitive


@given(st.text(alphabet="az09._-A/ ", max_size=130))
def test_schema_name_rule(name: str) -> None:
    expected = re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,127}", name) is not None
    assert (schema_name_problem(name) is None) == expected


def test_data_unit_id_rule() -> None:
    assert data_unit_id_problem("unit-1") is None
    assert data_unit_id_problem("x" * 256) is None
    assert "257 characters" in (data_unit_id_problem("x" * 257) or "")
    assert "empty" in (data_unit_id_problem("") or "")
    assert "control character" in (data_unit_id_problem("a\x00b") or "")
