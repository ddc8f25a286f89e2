"""The filter language: operators, precedence, quoting, escapes, types and error columns."""

from __future__ import annotations

import pytest

from metareg.server.domain import evolution as ev
from metareg.server.domain.errors import InvalidQuery
from metareg.server.domain.query import checker as c
from metareg.server.domain.query import syntax as s
from metareg.server.domain.query.evaluate import matches
from metareg.server.domain.schema import SchemaState

STATE = ev.apply_changes(
    SchemaState(),
    [
        ev.AddScalar("a", "varchar"), ev.AddScalar("b", "number"), ev.AddScalar("c", "boolean"),
        ev.AddScalar("at", "datetime"), ev.AddEnum("w", ("sun", "rain")),
        ev.AddScalar("team A.score", "number"), ev.AddScalar("and", "text"),
        ev.AddScalar("metadata.real", "text"), ev.AddScalar("id", "uuid"),
        ev.AddEmbedding("clip", 2), ev.AddScalar("gone", "text"), ev.DeleteKey("gone"),
    ],
).after  # fmt: skip


def parse(text: str) -> s.Node:
    node = s.parse_filter(text)
    assert node is not None
    return node


def error_at(text: str) -> tuple[int, str]:
    with pytest.raises(InvalidQuery) as caught:
        c.compile_filter(STATE, text)
    return caught.value.column, caught.value.problem


@pytest.mark.parametrize("operator", ["=", ":", "!=", ">", ">=", "<", "<="])
def test_every_comparison_operator(operator: str) -> None:
    node = parse(f"b {operator} 3")
    assert isinstance(node, s.Comparison)
    assert node.operator == ("=" if operator == ":" else operator)
    assert node.literal.value == 3.0


def test_in_exists_and_contains() -> None:
    assert isinstance(parse('w IN ("sun", "rain")'), s.In)
    assert isinstance(parse("clip EXISTS"), s.Exists)
    node = parse('a ~ "Cam"')
    assert isinstance(node, s.Comparison)
    assert node.operator == "~"


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    node = parse("a = 'x' OR b = 1 AND c = true")
    assert isinstance(node, s.Or)
    assert isinstance(node.items[1], s.And)
    node = parse("NOT a = 'x' AND b = 1")
    assert isinstance(node, s.And)
    assert isinstance(node.items[0], s.Not)
    node = parse("(a = 'x' OR b = 1) AND c = true")
    assert isinstance(node, s.And)
    assert isinstance(node.items[0], s.Or)


def test_keywords_are_case_insensitive() -> None:
    node = parse("a = 'x' or not b exists and c = TRUE")
    assert isinstance(node, s.Or)


def test_quoting_and_escapes() -> None:
    literal = parse(r'a = "say \"hi\" \\ \n\t \u00e9 \'"').literal  # type: ignore[union-attr]
    assert literal.value == 'say "hi" \\ \n\t é \''
    assert parse(r"a = 'it\'s'").literal.value == "it's"  # type: ignore[union-attr]
    key = parse(r"`team A.score` > 3").key  # type: ignore[union-attr]
    assert key.name == "team A.score"
    assert parse(r"`we\`ird` = 1").key.name == "we`ird"  # type: ignore[union-attr]
    assert parse("`and` ~ 'x'").key.name == "and"  # type: ignore[union-attr]
    # JSON writes characters outside the BMP as a surrogate pair: one character.
    assert parse(r'a = "\ud83d\ude00!"').literal.value == "\U0001f600!"  # type: ignore[union-attr]


def test_metadata_prefix_is_optional() -> None:
    checked = c.compile_filter(STATE, 'metadata.a:"x"')
    assert isinstance(checked, c.Compare)
    assert checked.key == "a"
    real = c.compile_filter(STATE, "`metadata.real` EXISTS")
    assert isinstance(real, c.Present)
    assert real.key == "metadata.real"  # a declared key wins over the prefix


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ('a = "open', 5, "string is not closed"),
        ("a = 'x' b = 1", 9, "combine conditions with AND or OR"),
        ("(a = 'x'", 9, "expected ')'"),
        ("a == 'x'", 4, "expected a value"),
        ("a 'x'", 3, "expected an operator"),
        ("= 1", 1, "expected a key"),
        ("and = 1", 1, "keywords in backquotes"),
        ("a = 'x' AND", 12, "expected a key"),
        ('a = "\\q"', 6, "unknown escape"),
        ('a = "\\ud83d"', 6, "half of a UTF-16 surrogate pair"),
        ('a = "x\\ude00\\ud83d"', 7, "half of a UTF-16 surrogate pair"),
        ("`\\ud800x` = 1", 2, "half of a UTF-16 surrogate pair"),
        ("a = 'x' @", 9, "unexpected character '@'"),
        ("b = 'x'", 5, 'key "b" has type number; compare it with a number, not a string'),
        ("c = 1", 5, "compare it with true or false"),
        ("a = 1", 5, "compare it with a string"),
        ("w > 'sun'", 3, "> does not apply to enum key"),
        ("c < true", 3, "does not apply to boolean key"),
        ("w = 'snow'", 5, "'snow' is not an option"),
        ("b ~ 'x'", 3, "~ (contains) applies to varchar and text"),
        ("nope = 1", 1, 'schema has no key "nope"'),
        ("a = 'x' AND gone = 'y'", 13, "soft-deleted"),
        ("clip = 1", 1, "supports only EXISTS"),
        ("at > 'yesterday'", 6, "not a valid date-time"),
        ("id = 'not-a-uuid'", 6, "not a version 4 UUID"),
        ("keyframes = 1", 1, "only EXISTS applies to keyframes"),
    ],
)
def test_errors_point_at_the_offending_column(text: str, column: int, fragment: str) -> None:
    found_column, problem = error_at(text)
    assert fragment in problem
    assert found_column == column


def test_error_message_names_the_field_and_column() -> None:
    with pytest.raises(InvalidQuery) as caught:
        c.compile_filter(STATE, "b > 'x'")
    assert caught.value.message.startswith("filter error at column 5:")
    assert caught.value.violations[0].field == "filter"
    with pytest.raises(InvalidQuery) as caught:
        c.compile_ordering(STATE, "w desc")
    assert caught.value.message.startswith("order_by error at column 1:")


def test_orderings() -> None:
    assert c.compile_ordering(STATE, "") is None
    ordering = c.compile_ordering(STATE, "`team A.score` DESC")
    assert ordering is not None
    assert (ordering.key, ordering.descending) == ("team A.score", True)
    with pytest.raises(InvalidQuery):
        c.compile_ordering(STATE, "a desc extra")


def test_datetime_literals_compare_across_time_zones() -> None:
    checked = c.compile_filter(STATE, "at > '2024-05-01T12:00:00+02:00'")
    later = {"at": "2024-05-01T10:30:00.000000Z"}  # 12:30 in +02:00
    earlier = {"at": "2024-05-01T09:59:59.000000Z"}
    assert matches(checked, later)
    assert not matches(checked, earlier)
    naive = c.compile_filter(STATE, "at = '2024-05-01T10:30:00'")
    assert matches(naive, later)


def test_absent_keys_make_comparisons_false_and_not_negates() -> None:
    assert not matches(c.compile_filter(STATE, "b != 1"), {})
    assert matches(c.compile_filter(STATE, "NOT b = 1"), {})
    assert matches(c.compile_filter(STATE, "NOT b EXISTS"), {"a": "x"})
    assert matches(c.compile_filter(STATE, "clip EXISTS"), {}, {"clip"})


def test_contains_ignores_ascii_case_only() -> None:
    checked = c.compile_filter(STATE, "a ~ 'CaM'")
    assert matches(checked, {"a": "my camera"})
    assert not matches(checked, {"a": "ca m"})
    accents = c.compile_filter(STATE, "a ~ 'É'")
    assert matches(accents, {"a": "É!"})
    assert not matches(accents, {"a": "é!"})


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("b > 1e309", 5),
        ("b < -1e309", 5),
        ("b = 1" + "0" * 309, 5),  # an integer too large for a double
        ("a = 'x' AND b IN (1, 2E400)", 22),
        ("`team A.score` >= 17976931348623159e292", 19),
    ],
)
def test_a_number_beyond_the_doubles_is_an_error_at_its_column(text: str, column: int) -> None:
    found_column, problem = error_at(text)
    assert found_column == column
    assert "is out of range for a double" in problem
    assert len(problem) < 200  # a 310-digit literal is shortened


def test_the_largest_doubles_and_underflow_are_numbers() -> None:
    for text, value in (("1.7976931348623157e308", 1.7976931348623157e308),
                        ("-1" + "0" * 308, -1e308), ("1e-400", 0.0)):  # fmt: skip
        node = parse(f"b > {text}")
        assert isinstance(node, s.Comparison)
        assert node.literal.value == value
