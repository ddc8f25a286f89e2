"""Parse filters and orderings into a syntax tree (recursive descent)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidQuery
from .lexer import Kind, Token, tokenize


@dataclass(frozen=True, slots=True)
class KeyRef:
    name: str
    column: int


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | float | bool
    column: int


@dataclass(frozen=True, slots=True)
class Comparison:
    key: KeyRef
    operator: str  # "=", "!=", "<", "<=", ">", ">=", "~"
    operator_column: int
    literal: Literal


@dataclass(frozen=True, slots=True)
class In:
    key: KeyRef
    column: int
    literals: tuple[Literal, ...]


@dataclass(frozen=True, slots=True)
class Exists:
    key: KeyRef


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Comparison | In | Exists | And | Or | Not


@dataclass(frozen=True, slots=True)
class Ordering:
    key: KeyRef
    descending: bool


MAX_DEPTH = 64


def _double(token: Token) -> float:
    """A number token's value. One beyond the range of a double (1e309, or an integer of
    310 digits) is an error at its column, as it is in a record, never infinity."""
    value = float(token.text)
    if math.isinf(value):
        shown = token.text if len(token.text) <= 40 else f"{token.text[:40]}…"
        raise InvalidQuery(
            token.column,
            f"the number {shown} is out of range for a double (whose magnitude is at most 1.8e308)",
        )
    return value


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.position = 0
        self.depth = 0

    def nested(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidQuery(
                column, f"a filter nests NOT and parentheses at most {MAX_DEPTH} deep"
            )

    @property
    def current(self) -> Token:
        return self.tokens[self.position]

    def advance(self) -> Token:
        token = self.current
        self.position += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind is Kind.KEYWORD and self.current.text in words

    def expect(self, kind: Kind, what: str) -> Token:
        if self.current.kind is not kind:
            raise InvalidQuery(
                self.current.column, f"expected {what}, found {self.current.describe()}"
            )
        return self.advance()

    def expect_end(self) -> None:
        if self.current.kind is not Kind.END:
            raise InvalidQuery(
                self.current.column,
                f"unexpected {self.current.describe()}; combine conditions with AND or OR",
            )

    # filter := or
    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.at_keyword("OR"):
            self.advance()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.at_keyword("AND"):
            self.advance()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_not(self) -> Node:
        if self.at_keyword("NOT"):
            self.nested(self.advance().column)
            node: Node = Not(self.parse_not())
            self.depth -= 1
            return node
        if self.current.kind is Kind.LPAREN:
            self.nested(self.advance().column)
            node = self.parse_or()
            self.expect(Kind.RPAREN, "')'")
            self.depth -= 1
            return node
        return self.parse_comparison()

    def parse_key(self) -> KeyRef:
        token = self.current
        if token.kind in (Kind.NAME, Kind.QUOTED_NAME):
            self.advance()
            return KeyRef(token.text, token.column)
        hint = (
            "; put key names that are keywords in backquotes" if token.kind is Kind.KEYWORD else ""
        )
        raise InvalidQuery(token.column, f"expected a key, found {token.describe()}{hint}")

    def parse_literal(self) -> Literal:
        token = self.advance()
        if token.kind is Kind.STRING:
            return Literal(token.text, token.column)
        if token.kind is Kind.NUMBER:
            return Literal(_double(token), token.column)
        if token.kind is Kind.KEYWORD and token.text in ("TRUE", "FALSE"):
            return Literal(token.text == "TRUE", token.column)
        raise InvalidQuery(
            token.column,
            f"expected a value (string, number, true or false), found {token.describe()}",
        )

    def parse_comparison(self) -> Node:
        key = self.parse_key()
        token = self.current
        if token.kind is Kind.OPERATOR:
            self.advance()
            operator = "=" if token.text == ":" else token.text
            return Comparison(key, operator, token.column, self.parse_literal())
        if self.at_keyword("EXISTS"):
            self.advance()
            return Exists(key)
        if self.at_keyword("IN"):
            self.advance()
            self.expect(Kind.LPAREN, "'(' after IN")
            literals = [self.parse_literal()]
            while self.current.kind is Kind.COMMA:
                self.advance()
                literals.append(self.parse_literal())
            self.expect(Kind.RPAREN, "',' or ')'")
            return In(key, token.column, tuple(literals))
        raise InvalidQuery(
            token.column,
            f"expected an operator (=, :, !=, >, >=, <, <=, ~, IN or EXISTS) after key "
            f"{key.name!r}, found {token.describe()}",
        )


def parse_filter(source: str) -> Node | None:
    """The syntax tree of a filter; None for an empty filter (everything matches)."""
    if not source.strip():
        return None
    parser = _Parser(source)
    node = parser.parse_or()
    parser.expect_end()
    return node


def parse_ordering(source: str) -> Ordering | None:
    """`key`, `key asc` or `key desc`; None when empty (order by data_unit_id)."""
    if not source.strip():
        return None
    parser = _Parser(source)
    key = parser.parse_key()
    descending = False
    if parser.at_keyword("ASC", "DESC"):
        descending = parser.advance().text == "DESC"
    parser.expect_end()
    return Ordering(key, descending)
