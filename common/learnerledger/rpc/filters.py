"""The AIP-160 subset our list methods accept: comparisons ``field = value`` joined by AND.

Grammar::

    filter      := comparison ( "AND" comparison )*
    comparison  := field "=" value
    value       := a double-quoted string (backslash escapes \\" and \\\\), or a bare word

Pure: :func:`parse_comparisons` returns the values by field or raises :class:`InvalidFilter`
with a description fit for a ``BadRequest`` field violation on ``filter``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<and>AND)(?![\w.-])
      | (?P<eq>=)
      | "(?P<quoted>(?:[^"\\]|\\.)*)"
      | (?P<bare>[A-Za-z0-9_.\-]+)
    )""",
    re.VERBOSE,
)


class InvalidFilter(ValueError):
    """The filter does not parse or names an unknown field or value."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise InvalidFilter(f"unexpected character at offset {pos}: {text[pos : pos + 10]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "quoted":
            value = re.sub(r"\\(.)", r"\1", value)
        found.append((kind, value))
        pos = match.end()
    return found


def parse_comparisons(text: str, fields: Sequence[str]) -> dict[str, str]:
    """``field = "value"`` comparisons joined by AND, each of ``fields`` at most once."""
    if not text.strip():
        return {}
    tokens = _tokens(text)
    values: dict[str, str] = {}
    index = 0
    while True:
        if index + 3 > len(tokens):
            raise InvalidFilter('expected a comparison of the form field = "value"')
        (k1, name), (k2, _), (k3, value) = tokens[index : index + 3]
        if k1 != "bare" or k2 != "eq" or k3 not in ("quoted", "bare"):
            raise InvalidFilter('expected a comparison of the form field = "value"')
        if name not in fields:
            raise InvalidFilter(f"unknown field {name!r}; filterable fields: {', '.join(fields)}")
        if name in values:
            raise InvalidFilter(f"field {name!r} appears more than once")
        values[name] = value
        index += 3
        if index == len(tokens):
            break
        if tokens[index][0] != "and":
            raise InvalidFilter("comparisons must be joined with AND (OR is not supported)")
        index += 1
    return values
