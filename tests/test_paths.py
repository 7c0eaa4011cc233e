"""pipelines.pricing.paths: the one JSON path parser and its DuckDB JSON Pointer binding."""

from __future__ import annotations

import json

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.pricing.paths import PathError, canonical, format_path, parse_path, to_json_pointer

# --- parse_path: accepted forms ---


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("$.quantity", ("quantity",)),
        ("$.a.b", ("a", "b")),
        ("a.b", ("a", "b")),
        ("quantity", ("quantity",)),
        ("usage.tokens_k", ("usage", "tokens_k")),
        ('$["a.b"]', ("a.b",)),
        ("$['a.b']", ("a.b",)),
        ('"a.b"', ("a.b",)),
        ("'a.b'", ("a.b",)),
        ('$.a["b.c"].d', ("a", "b.c", "d")),
        ('$["x"]["y"]', ("x", "y")),
        ('"a.b".c', ("a.b", "c")),
        ('a."b.c"', ("a", "b.c")),
        ('a["b.c"]', ("a", "b.c")),
        ("$.items[0]", ("items", 0)),
        ("$.items[12].name", ("items", 12, "name")),
        ("items[0][1]", ("items", 0, 1)),
        ("$[0]", (0,)),
        ("[0]", (0,)),
        ("$.items[007]", ("items", 7)),
        ('$["input.tokens"]', ("input.tokens",)),
        ('$[""]', ("",)),
        ('""', ("",)),
        ('$.a[""].b', ("a", "", "b")),
    ],
)
def test_parse_path_forms(text: str, segments: tuple) -> None:
    assert parse_path(text) == segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("Team", ("Team",)),
        ("team", ("team",)),
        ("$.Team.Name", ("Team", "Name")),
        ("équipe.größe", ("équipe", "größe")),
        ("用户.部门", ("用户", "部门")),
        ("emoji😀", ("emoji😀",)),
        ("team name", ("team name",)),
        ("$. padded ", (" padded ",)),
        (" ", (" ",)),
        ("a'); DROP TABLE x; --", ("a'); DROP TABLE x; --",)),
        ("$.a'); DROP TABLE x; --", ("a'); DROP TABLE x; --",)),
        ("it's.ok", ("it's", "ok")),
        ('say"hi"', ('say"hi"',)),
        ("back\\slash", ("back\\slash",)),
        ("a/b~c", ("a/b~c",)),
        ("$foo", ("$foo",)),
        ("$foo.bar", ("$foo", "bar")),
        ("a$.b", ("a$", "b")),
        ("-1", ("-1",)),
        ("0.1", ("0", "1")),
        ("a\tb\nc", ("a\tb\nc",)),
    ],
)
def test_keys_are_literal_and_case_sensitive(text: str, segments: tuple) -> None:
    assert parse_path(text) == segments


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (r'$["say \"hi\""]', 'say "hi"'),
        (r"$['it\'s']", "it's"),
        (r'"back\\slash"', "back\\slash"),
        (r'"a\\"', "a\\"),
        (r'"\\\""', '\\"'),
        ("$['say \"hi\"']", 'say "hi"'),
        ('$["it\'s"]', "it's"),
        ('$["a]b[c"]', "a]b[c"),
        ('$["a.b.c"]', "a.b.c"),
        ('$["$"]', "$"),
        ('$["*"]', "*"),
        ('$["a\'); DROP TABLE x; --"]', "a'); DROP TABLE x; --"),
    ],
)
def test_quoted_keys_and_escapes(text: str, key: str) -> None:
    assert parse_path(text) == (key,)


# --- parse_path: errors ---


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("$", "whole data object"),
        ("a..b", "empty key"),
        ("$..a", "'..' is not supported"),
        ("a.", "ends with '.'"),
        ("$.", "ends with '.'"),
        (".a", "empty key"),
        ("$.a.", "ends with '.'"),
        ("a.[0]", "empty key"),
        ('"abc', "unterminated"),
        ("'abc", "unterminated"),
        ('$["abc', "unterminated"),
        ('$["abc"', "missing ']'"),
        ("$['abc\"]", "unterminated"),
        ('"a\\"', "unterminated"),
        ('"a\\n"', "bad escape"),
        ('"a\\', "unterminated"),
        ("$.a[x]", "after '['"),
        ("$[-1]", "after '['"),
        ("$[]", "after '['"),
        ("$[*]", "after '['"),
        ("$.a[0", "missing ']'"),
        ("$.a[0]x", "expected '.' or '['"),
        ('"a"b', "expected '.' or '['"),
        ("$x", None),  # not an error: a bare key named "$x" (checked below)
        ("a]", "unexpected ']'"),
        ("$.a]", "unexpected ']'"),
        ("$.*", "wildcards"),
        ("a.*", "wildcards"),
        ("$[٣]", "after '['"),
    ],
)
def test_parse_path_errors(text: str, problem: str | None) -> None:
    if problem is None:
        assert parse_path(text) == (text,)
        return
    with pytest.raises(PathError) as info:
        parse_path(text)
    message = str(info.value)
    assert problem in message
    assert repr(text) in message, "the message quotes the path"
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [None, 5, b"a.b", ["a"]])
def test_parse_path_rejects_non_strings(value: object) -> None:
    with pytest.raises(PathError, match="must be a string"):
        parse_path(value)  # type: ignore[arg-type]


def test_multiline_path_error_is_one_line() -> None:
    with pytest.raises(PathError) as info:
        parse_path("a\n..b")
    assert "\n" not in str(info.value)


# --- to_json_pointer, format_path, canonical ---


@pytest.mark.parametrize(
    ("segments", "pointer"),
    [
        (("a", "b"), "/a/b"),
        (("a.b",), "/a.b"),
        (("items", 0, "x"), "/items/0/x"),
        (("a/b",), "/a~1b"),
        (("a~b",), "/a~0b"),
        (("~1",), "/~01"),
        (("/~",), "/~1~0"),
        (("",), "/"),
        (("", ""), "//"),
        ((), ""),
        (("a'); DROP TABLE x; --",), "/a'); DROP TABLE x; --"),
    ],
)
def test_to_json_pointer(segments: tuple, pointer: str) -> None:
    assert to_json_pointer(segments) == pointer


@pytest.mark.parametrize("bad", [(True,), (-1,), (1.5,), (None,), (("a",),)])
def test_to_json_pointer_rejects_bad_segments(bad: tuple) -> None:
    with pytest.raises(PathError):
        to_json_pointer(bad)


@pytest.mark.parametrize(
    ("text", "display"),
    [
        ("a.b", "$.a.b"),
        ("$.a.b", "$.a.b"),
        ("$['a']['b']", "$.a.b"),
        ('"a.b"', '$["a.b"]'),
        ('$.a["b.c"].d', '$.a["b.c"].d'),
        ("items[007]", "$.items[7]"),
        ("team name", '$["team name"]'),
        ("it's", '$["it\'s"]'),
        ('say"hi"', r'$["say\"hi\""]'),
        ("back\\slash", r'$["back\\slash"]'),
        ("équipe", "$.équipe"),
        ('$[""]', '$[""]'),
        ("0", '$["0"]'),
    ],
)
def test_canonical(text: str, display: str) -> None:
    assert canonical(text) == display
    assert parse_path(display) == parse_path(text)


# --- DuckDB: the pointer, bound as a parameter, addresses exactly the key ---

TRICKY_KEYS = [
    "a.b",
    "a b",
    "a/b",
    "a~b",
    "~0",
    "~1",
    "a~1b",
    'a"b',
    "a'b",
    "ünï😀",
    "用户",
    "",
    " ",
    "a'); DROP TABLE x; --",
    "Team",
    "team",
    "TEAM",
    "$",
    "$.a",
    "[0]",
    "0",
    "*",
    "\\",
    "a\\b",
    "\n",
    "\x00x",
    'a"]',
    "/",
    "~",
    "//",
    "-",
    "-1",
    "null",
    "a->>b",
    "?",
    "$p",
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


def _extract(con: duckdb.DuckDBPyConnection, doc: object, pointer: str) -> tuple:
    return con.execute(
        "select json_extract_string($d::JSON, $p), json_extract($d::JSON, $p)::VARCHAR,"
        " json_type($d::JSON, $p), ($d::JSON) ->> $p, (($d::JSON) -> $p)::VARCHAR",
        {"d": json.dumps(doc), "p": pointer},
    ).fetchone()


@pytest.mark.parametrize("key", TRICKY_KEYS)
def test_duckdb_pointer_top_level_key(con: duckdb.DuckDBPyConnection, key: str) -> None:
    doc = {"Team": "upper", "team": "lower", "a": {"b": "nested"}, key: "value:" + key}
    value = "value:" + key
    string, as_json, kind, arrow_text, arrow_json = _extract(con, doc, to_json_pointer([key]))
    assert (string, kind, arrow_text) == (value, "VARCHAR", value)
    assert json.loads(as_json) == json.loads(arrow_json) == value


@pytest.mark.parametrize("key", TRICKY_KEYS)
def test_duckdb_pointer_nested_key_and_index(con: duckdb.DuckDBPyConnection, key: str) -> None:
    doc = {"outer": {key: [{"x": 0}, {key: 42, "other": 1}]}}
    pointer = to_json_pointer(["outer", key, 1, key])
    string, as_json, kind, arrow_text, _ = _extract(con, doc, pointer)
    assert (string, as_json, kind, arrow_text) == ("42", "42", "UBIGINT", "42")


def test_duckdb_case_different_keys_are_distinct(con: duckdb.DuckDBPyConnection) -> None:
    doc = {"Team": "A", "team": "b", "TEAM": "C", "externalUserId": "u1", "external_user_id": "u2"}
    for key, value in [
        ("Team", "A"),
        ("team", "b"),
        ("TEAM", "C"),
        ("externalUserId", "u1"),
        ("external_user_id", "u2"),
    ]:
        assert _extract(con, doc, to_json_pointer(parse_path(key)))[0] == value
    assert _extract(con, doc, to_json_pointer(parse_path("tEaM")))[0] is None


def test_duckdb_dotted_key_vs_nested_object(con: duckdb.DuckDBPyConnection) -> None:
    doc = {"a.b": "literal", "a": {"b": "nested"}}
    assert _extract(con, doc, to_json_pointer(parse_path('"a.b"')))[0] == "literal"
    assert _extract(con, doc, to_json_pointer(parse_path('$["a.b"]')))[0] == "literal"
    assert _extract(con, doc, to_json_pointer(parse_path("a.b")))[0] == "nested"
    assert _extract(con, doc, to_json_pointer(parse_path("$.a.b")))[0] == "nested"


def test_duckdb_missing_null_and_out_of_range(con: duckdb.DuckDBPyConnection) -> None:
    doc = {"n": None, "items": [1, 2]}
    assert _extract(con, doc, "/missing") == (None, None, None, None, None)
    assert _extract(con, doc, "/n") == (None, "null", "NULL", None, "null")
    assert _extract(con, doc, to_json_pointer(parse_path("items[5]")))[0] is None
    assert _extract(con, doc, to_json_pointer(parse_path("items[1]")))[0] == "2"
    # JSON Pointer property: a key segment "1" also indexes an array
    assert _extract(con, doc, to_json_pointer(parse_path("items.1")))[0] == "2"


def test_duckdb_pointer_as_column(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        "select json_extract_string(d::JSON, p) from (values ($d1, $p1), ($d2, $p2)) t(d, p)",
        {
            "d1": json.dumps({"a.b": 1}),
            "p1": to_json_pointer(parse_path('"a.b"')),
            "d2": json.dumps({"x": {"y/z": 2}}),
            "p2": to_json_pointer(("x", "y/z")),
        },
    ).fetchall()
    assert rows == [("1",), ("2",)]


def test_duckdb_injection_key_stays_data(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create or replace table x as select 1 as a")
    key = "a'); DROP TABLE x; --"
    doc = {key: "safe"}
    assert _extract(con, doc, to_json_pointer(parse_path(key)))[0] == "safe"
    assert con.execute("select count(*) from x").fetchone() == (1,)


# --- properties ---

keys = st.text(max_size=12)
segment_lists = st.lists(st.one_of(keys, st.integers(0, 3)), min_size=1, max_size=4)


def _nest(segments: list, leaf: object) -> object:
    """A JSON document holding `leaf` at `segments`, with decoy siblings."""
    value = leaf
    for segment in reversed(segments):
        if isinstance(segment, int):
            value = ["decoy"] * segment + [value] + ["decoy"]
        else:
            decoys = {segment + ".", segment.upper(), segment.lower(), segment + "/", "~" + segment}
            value = {**{d: "decoy" for d in decoys if d != segment}, segment: value}
    return value


@settings(max_examples=300)
@given(key=keys)
def test_pointer_round_trips_any_key_through_duckdb(
    con: duckdb.DuckDBPyConnection, key: str
) -> None:
    doc = _nest([key], "found")
    assert _extract(con, doc, to_json_pointer([key]))[0] == "found"
    assert _extract(con, doc, to_json_pointer(parse_path(format_path([key]))))[0] == "found"


@settings(max_examples=200)
@given(segments=segment_lists.filter(lambda s: isinstance(s[0], str)))
def test_pointer_round_trips_nested_paths_through_duckdb(
    con: duckdb.DuckDBPyConnection, segments: list
) -> None:
    doc = _nest(segments, {"leaf": True})
    params = {"d": json.dumps(doc), "p": to_json_pointer(segments)}
    row = con.execute("select json_extract($d::JSON, $p)::VARCHAR", params).fetchone()
    assert json.loads(row[0]) == {"leaf": True}


@given(segments=segment_lists)
def test_format_path_round_trips(segments: list) -> None:
    assert parse_path(format_path(segments)) == tuple(segments)
    assert canonical(format_path(segments)) == format_path(segments)


@given(text=st.text(max_size=20))
def test_parse_path_only_raises_path_error(text: str) -> None:
    try:
        segments = parse_path(text)
    except PathError as exc:
        assert "\n" not in str(exc)
    else:
        assert segments
        assert parse_path(format_path(segments)) == segments


@given(key=st.text(alphabet=st.characters(blacklist_characters=".[]\"'"), min_size=1, max_size=12))
def test_bare_keys_without_syntax_characters_are_literal(key: str) -> None:
    if key in {"$", "*"}:
        return
    assert parse_path(key) == (key,)
    assert parse_path("$." + key) == (key,)
