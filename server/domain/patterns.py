"""Value patterns: RE2 regular expressions, which match in time linear in the value.

A pattern is searched anywhere in a value, as JSON Schema's `pattern` is; anchor it
with ^ and $ to match a whole value. RE2 has no backreferences or lookarounds, which
is what lets it promise linear time whatever the pattern; it refuses them when the
pattern is declared. Its syntax is close to ECMA-262's, the dialect of JSON Schema,
for the common subset (classes, ^ and $ without multi-line, repetition).
"""

from __future__ import annotations

from functools import lru_cache

import re2

from .names import shorten
from .schema import PATTERN_MAX_LENGTH

# RE2's own default memory budget for a compiled pattern (8 MiB); a pattern that needs
# more is refused when it is declared.
_MAX_PATTERN_MEMORY = 8 << 20


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # refusals are reported to the caller, not on stderr
    options.max_mem = _MAX_PATTERN_MEMORY
    return options


class PatternRefused(ValueError):
    """A pattern RE2 cannot compile, or one past the length limit; str() says why."""


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a key's pattern, or None when it can."""
    if not pattern:
        return "pattern must not be empty (leave it unset for no pattern)"
    if len(pattern) > PATTERN_MAX_LENGTH:
        return f"pattern is {len(pattern)} characters long; the limit is {PATTERN_MAX_LENGTH}"
    try:
        compile_pattern(pattern)
    except PatternRefused as refused:
        return f"pattern {shorten(pattern)} is not a valid RE2 regular expression: {refused}"
    return None


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re2._Regexp:
    """The compiled pattern (cached: every validator of a schema version compiles it)."""
    try:
        return re2.compile(pattern, _options())
    except re2.error as error:
        reason = error.args[0] if error.args else error
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise PatternRefused(text) from None
    except UnicodeEncodeError:
        raise PatternRefused("it is not valid UTF-8 text") from None
