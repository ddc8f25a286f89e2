"""Tokens of the filter language, each with its 1-based column."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ..errors import InvalidQuery


class Kind(enum.Enum):
    NAME = "name"
    QUOTED_NAME = "quoted name"
    STRING = "string"
    NUMBER = "number"
    OPERATOR = "operator"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    KEYWORD = "keyword"
    END = "end of input"


KEYWORDS = {"AND", "OR", "NOT", "IN", "EXISTS", "TRUE", "FALSE", "ASC", "DESC"}
OPERATORS = ("!=", ">=", "<=", "=", ":", ">", "<", "~")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r",
            "`": "`"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # the token's value: unquoted string, upper-case keyword, operator…
    column: int

    def describe(self) -> str:
        if self.kind is Kind.END:
            return "the end of the filter"
        if self.kind in (Kind.STRING, Kind.QUOTED_NAME):
            return f"{self.kind.value} {self.text!r}"
        return f"{self.text!r}"


def _read_quoted(source: str, start: int, quote: str, kind: str) -> tuple[str, int]:
    """The unescaped text of a quoted token starting at `start`, and the index after it."""
    out: list[str] = []
    index = start + 1
    while index < len(source):
        char = source[index]
        if char == quote:
            return "".join(out), index + 1
        if char == "\x00":
            raise InvalidQuery(index + 1, f"a {kind} cannot contain a NUL character")
        if char == "\\":
            escape = source[index + 1 : index + 2]
            if escape == "u":
                digits = source[index + 2 : index + 6]
                if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                    raise InvalidQuery(index + 1, "\\u must be followed by four hex digits")
                if digits == "0000":
                    raise InvalidQuery(index + 1, f"a {kind} cannot contain a NUL character")
                code = int(digits, 16)
                index += 6
                if 0xD800 <= code <= 0xDFFF:  # UTF-16 surrogates, as JSON writes 😀
                    low = _low_surrogate(source, index) if code <= 0xDBFF else None
                    if low is None:
                        raise InvalidQuery(
                            index - 5,
                            f"\\u{digits} is half of a UTF-16 surrogate pair; write the "
                            "character itself, or both halves (\\ud83d\\ude00)",
                        )
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    index += 6
                out.append(chr(code))
                continue
            if escape not in _ESCAPES:
                raise InvalidQuery(index + 1, f"unknown escape \\{escape} in {kind}")
            out.append(_ESCAPES[escape])
            index += 2
            continue
        out.append(char)
        index += 1
    raise InvalidQuery(start + 1, f"{kind} is not closed: add the missing {quote}")


def _low_surrogate(source: str, index: int) -> int | None:
    """The low surrogate a `\\uDC00`..`\\uDFFF` escape at `index` stands for, if there is one."""
    escape = source[index : index + 6]
    if re.fullmatch(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}", escape):
        return int(escape[2:], 16)
    return None


MAX_FILTER_LENGTH = 16_384


def tokenize(source: str) -> list[Token]:
    if len(source) > MAX_FILTER_LENGTH:
        raise InvalidQuery(
            MAX_FILTER_LENGTH + 1, f"a filter is at most {MAX_FILTER_LENGTH} characters long"
        )
    tokens: list[Token] = []
    index = 0
    while index < len(source):
        char = source[index]
        column = index + 1
        if char.isspace():
            index += 1
            continue
        if char in "\"'":
            text, index = _read_quoted(source, index, char, "string")
            tokens.append(Token(Kind.STRING, text, column))
            continue
        if char == "`":
            text, index = _read_quoted(source, index, "`", "quoted key name")
            if not text:
                raise InvalidQuery(column, "a quoted key name must not be empty")
            tokens.append(Token(Kind.QUOTED_NAME, text, column))
            continue
        if char in "(),":
            kind = {"(": Kind.LPAREN, ")": Kind.RPAREN, ",": Kind.COMMA}[char]
            tokens.append(Token(kind, char, column))
            index += 1
            continue
        operator = next((op for op in OPERATORS if source.startswith(op, index)), None)
        if operator:
            tokens.append(Token(Kind.OPERATOR, operator, column))
            index += len(operator)
            continue
        number = _NUMBER.match(source, index)
        if number and (char != "-" or number.end() > index + 1):
            tokens.append(Token(Kind.NUMBER, number.group(), column))
            index = number.end()
            continue
        name = _NAME.match(source, index)
        if name:
            word = name.group()
            if word.upper() in KEYWORDS:
                tokens.append(Token(Kind.KEYWORD, word.upper(), column))
            else:
                tokens.append(Token(Kind.NAME, word, column))
            index = name.end()
            continue
        raise InvalidQuery(column, f"unexpected character {char!r}")
    tokens.append(Token(Kind.END, "", len(source) + 1))
    return tokens
