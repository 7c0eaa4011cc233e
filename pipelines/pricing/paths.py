"""The JSON path syntax of Tally: the one parser behind `quantity_path` and breakdown keys.

A path addresses a value inside a signal's `data` object. Accepted forms (docs/concepts.md):

- `$.a.b` — JSONPath style: `$` then `.name` steps.
- `a.b` — dotted style (as the Paid SDK's `pricingInput.path`): dots address nested objects.
- `$["a.b"]`, `$['a.b']`, `"a.b"` — a quoted key is one literal key, dots and all. Quoted and
  dotted steps mix freely: `$.a["b.c"].d`, `$["x"]["y"]`, `"a.b".c`.
- `$.items[0]` — a non-negative array index (an `int` segment).

Key names are literal and case-sensitive. A bare (unquoted) key is everything up to the next `.`
or `[`, so spaces, unicode, quotes in the middle and SQL text are just part of the key
(`a'); DROP TABLE x; --` is one key). Inside quotes, `\\"`, `\\'` and `\\\\` escape a quote or a
backslash; any other character stands for itself. `$` alone, empty paths, empty segments (`a..b`,
`a.`), recursive descent (`$..a`), wildcards and unterminated quotes raise `PathError`.

Paths never become SQL text. `to_json_pointer` turns segments into an RFC 6901 JSON Pointer
(`/a/b`; `~` is written `~0` and `/` is written `~1`) that SQL binds as a parameter::

    con.execute("select json_extract_string(data, $p) from t", {"p": to_json_pointer(segs)})

Verified against DuckDB 2.0 (`json_extract`, `json_extract_string`, `json_type`, `->`, `->>`,
with the pointer as a bound parameter or a column): keys containing `.`, spaces, `/`, `~`, `"`,
`'`, `\\`, `$`, `[0]`, `*`, newlines, NUL, unicode and SQL text resolve exactly; `Team` and
`team` in one object are distinct; a missing key gives SQL NULL while JSON `null` gives the JSON
value `null` (`json_type` = 'NULL', `->>` = NULL). `/` addresses the empty-string key. One JSON
Pointer property to know: a segment is an object key or an array index depending on the value it
meets, so `$.items.0`, `$.items[0]` and `$.items["0"]` produce the same pointer. DuckDB does
not support `-` or negative indices in pointers (they yield NULL), so neither does this syntax.
Caution for exact quantities: DuckDB's JSON reader keeps the digits of integers of any size
(past 64 bits `json_type` says DOUBLE) but turns non-integers into doubles:
`0.1234567890123456789` comes back as `0.12345678901234568`, `2.50` as `2.5`, `1E2` as `100.0`.
Strings come back verbatim.
"""

from __future__ import annotations

from collections.abc import Iterable

Segment = str | int

_QUOTES = "\"'"
_ESCAPABLE = "\"'\\"
_DIGITS = "0123456789"


class PathError(ValueError):
    """A path that cannot be parsed; the message is one line and quotes the path."""


def _error(text: str, problem: str) -> PathError:
    return PathError(f"invalid path {text!r}: {problem}")


def _quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted key opening at `start`; return it and the index after the closing quote."""
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            if text[i + 1] in _ESCAPABLE:
                chars.append(text[i + 1])
                i += 2
                continue
            allowed = "only \\\\, \\\" and \\' are allowed"
            raise _error(text, f"bad escape at character {i + 1}: {allowed}")
        if ch == quote:
            return "".join(chars), i + 1
        chars.append(ch)
        i += 1
    raise _error(text, f"unterminated quoted key starting at character {start + 1}")


def _member(text: str, start: int) -> tuple[str, int]:
    """Read a key after a dot (or at the start of a dotted path): quoted or bare."""
    if text[start] in _QUOTES:
        return _quoted(text, start)
    i = start
    while i < len(text) and text[i] not in ".[":
        if text[i] == "]":
            raise _error(text, f"unexpected ']' at character {i + 1} (quote keys like $[\"a]\"])")
        i += 1
    if i == start:
        raise _error(text, f"empty key at character {start + 1}")
    key = text[start:i]
    if key == "*":
        raise _error(text, "wildcards are not supported")
    return key, i


def _bracket(text: str, start: int) -> tuple[Segment, int]:
    """Read `["key"]`, `['key']` or `[index]` opening at `start`."""
    i = start + 1
    segment: Segment
    if i < len(text) and text[i] in _QUOTES:
        segment, i = _quoted(text, i)
    elif i < len(text) and text[i] in _DIGITS:
        end = i
        while end < len(text) and text[end] in _DIGITS:
            end += 1
        segment, i = int(text[i:end]), end
    else:
        raise _error(
            text,
            f"expected a quoted key or an index >= 0 after '[' at character {start + 1}",
        )
    if i >= len(text) or text[i] != "]":
        raise _error(text, f"missing ']' for the '[' at character {start + 1}")
    return segment, i + 1


def parse_path(text: str) -> tuple[Segment, ...]:
    """Parse a path into its segments: `str` for object keys, `int` for array indices."""
    if not isinstance(text, str):
        raise PathError(f"invalid path {text!r}: a path must be a string")
    if text == "":
        raise _error(text, "the path is empty")
    segments: list[Segment] = []
    i = 0
    if text[0] == "$" and (len(text) == 1 or text[1] in ".["):
        if len(text) == 1:
            raise _error(text, "'$' alone is the whole data object; name a key, e.g. $.quantity")
        i = 1
    elif text[0] != "[":
        key, i = _member(text, 0)
        segments.append(key)
    while i < len(text):
        ch = text[i]
        if ch == ".":
            i += 1
            if i == len(text):
                raise _error(text, "the path ends with '.'")
            if text[i] == ".":
                raise _error(text, f"empty key at character {i + 1} ('..' is not supported)")
            key, i = _member(text, i)
            segments.append(key)
        elif ch == "[":
            segment, i = _bracket(text, i)
            segments.append(segment)
        else:
            raise _error(text, f"expected '.' or '[' at character {i + 1}, found {ch!r}")
    return tuple(segments)


def _check_segment(segment: object) -> Segment:
    if isinstance(segment, bool) or not isinstance(segment, (str, int)):
        raise PathError(f"invalid path segment {segment!r}: must be a string key or an int index")
    if isinstance(segment, int) and segment < 0:
        raise PathError(f"invalid path segment {segment!r}: array indices are non-negative")
    return segment


def to_json_pointer(segments: Iterable[Segment]) -> str:
    """The RFC 6901 JSON Pointer for `segments` (`()` gives `""`, the whole document)."""
    parts = []
    for segment in map(_check_segment, segments):
        if isinstance(segment, int):
            parts.append(f"/{segment}")
        else:
            parts.append("/" + segment.replace("~", "~0").replace("/", "~1"))
    return "".join(parts)


def format_path(segments: Iterable[Segment]) -> str:
    """The canonical display form of `segments`: `$.a["b.c"][0]`; `parse_path` reads it back."""
    out = ["$"]
    for segment in map(_check_segment, segments):
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif segment.isidentifier():
            out.append(f".{segment}")
        else:
            escaped = segment.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'["{escaped}"]')
    return "".join(out)


def canonical(text: str) -> str:
    """Normalize a path's spelling: `a.b`, `$.a.b` and `$["a"]['b']` all give `$.a.b`."""
    return format_path(parse_path(text))
