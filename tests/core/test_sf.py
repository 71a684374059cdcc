"""The RFC 9651 Structured Fields parser in `forbear._sf`, against the public test vectors.

The tables below restate a selection of the httpwg structured-field-tests cases (lists,
parameterised lists, lists of lists, numbers, strings, tokens, byte sequences, booleans, dates,
display strings) in Python terms: an Item is ``(value, params)``, an Inner List is
``([items], params)``. Nothing is read from outside the repository at test time.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forbear._sf import (
    Date,
    DisplayString,
    InnerList,
    Item,
    Token,
    parse_dictionary,
    parse_item,
    parse_list,
)


def plain(member: Item | InnerList) -> tuple[Any, dict[str, Any]]:
    """A parsed member in the tables' shape."""
    if isinstance(member, InnerList):
        return [plain(item) for item in member.items], member.params
    return member.value, member.params


T = Token

LISTS = [
    ("basic list", "1, 42", [(1, {}), (42, {})]),
    ("empty list", "", []),
    ("single item list", "42", [(42, {})]),
    ("no whitespace list", "1,42", [(1, {}), (42, {})]),
    ("extra whitespace list", "1 , 42", [(1, {}), (42, {})]),
    ("two line list (joined)", "1, 42", [(1, {}), (42, {})]),
    (
        "basic parameterised list",
        'abc_123;a=1;b=2; cdef_456, ghi;q=9;r="+w"',
        [(T("abc_123"), {"a": 1, "b": 2, "cdef_456": True}), (T("ghi"), {"q": 9, "r": "+w"})],
    ),
    ("single item parameterised list", "text/html;q=1.0", [(T("text/html"), {"q": 1.0})]),
    (
        "missing parameter value parameterised list",
        "text/html;a;q=1.0",
        [(T("text/html"), {"a": True, "q": 1.0})],
    ),
    (
        "no whitespace parameterised list",
        "text/html,text/plain;q=0.5",
        [(T("text/html"), {}), (T("text/plain"), {"q": 0.5})],
    ),
    (
        "whitespace after ; parameterised list",
        "text/html, text/plain; q=0.5",
        [(T("text/html"), {}), (T("text/plain"), {"q": 0.5})],
    ),
    (
        "extra whitespace parameterised list",
        "text/html  ,  text/plain;  q=0.5;  charset=utf-8",
        [(T("text/html"), {}), (T("text/plain"), {"q": 0.5, "charset": T("utf-8")})],
    ),
    (
        "basic list of lists",
        "(1 2), (42 43)",
        [([(1, {}), (2, {})], {}), ([(42, {}), (43, {})], {})],
    ),
    ("single item list of lists", "(42)", [([(42, {})], {})]),
    ("empty item list of lists", "()", [([], {})]),
    (
        "empty middle item list of lists",
        "(1),(),(42)",
        [([(1, {})], {}), ([], {}), ([(42, {})], {})],
    ),
    ("extra whitespace list of lists", "(  1  42  )", [([(1, {}), (42, {})], {})]),
    (
        "Example-StrListHeader",
        '"foo", "bar", "It was the best of times."',
        [("foo", {}), ("bar", {}), ("It was the best of times.", {})],
    ),
    (
        "Example-ListListParam",
        '("foo"; a=1;b=2);lvl=5, ("bar" "baz");lvl=1',
        [([("foo", {"a": 1, "b": 2})], {"lvl": 5}), ([("bar", {}), ("baz", {})], {"lvl": 1})],
    ),
    (
        "Example-ParamListHeader",
        'abc;a=1;b=2; cde_456, (ghi;jk=4 l);q="9";r=w',
        [
            (T("abc"), {"a": 1, "b": 2, "cde_456": True}),
            ([(T("ghi"), {"jk": 4}), (T("l"), {})], {"q": "9", "r": T("w")}),
        ],
    ),
    ("basic token - list", "a_b-c3/*", [(T("a_b-c3/*"), {})]),
    ("list of dates", "@1659578233, @1659578234", [(Date(1659578233), {}), (Date(1659578234), {})]),
    ("duplicate parameter keeps the last value", "a;x=1;x=2", [(T("a"), {"x": 2})]),
    ("field value OWS trimmed", " \t1, 2 \t", [(1, {}), (2, {})]),
    ("ratelimit policy list", '"burst";q=100;w=60,"daily";q=1000;w=86400', None),
]

LIST_FAILURES = [
    ("trailing comma list", "1, 42,"),
    ("empty item list", "1,,42"),
    ("whitespace before = parameterised list", "text/html, text/plain;q =0.5"),
    ("whitespace after = parameterised list", "text/html, text/plain;q= 0.5"),
    ("whitespace before ; parameterised list", "text/html, text/plain ;q=0.5"),
    ("trailing comma parameterised list", "text/html,text/plain;q=0.5,"),
    ("empty item parameterised list", "text/html,,text/plain;q=0.5,"),
    ("wrong whitespace list of lists", "(1\t 42)"),
    ("no trailing parenthesis list of lists", "(1 42"),
    ("no trailing parenthesis middle list of lists", "(1 2, (42 43)"),
    ("no spaces in inner-list", '(abc"def"?0123*dXZ3*xyz)'),
    ("uppercase parameter key", "a;Q=1"),
    ("members without a comma", "1 2"),
    ("dictionary syntax is no list", "limit=100, remaining=50"),
]

ITEMS = [
    ("basic integer", "42", 42),
    ("zero integer", "0", 0),
    ("leading 0 zero", "00", 0),
    ("negative zero", "-0", 0),
    ("negative integer", "-42", -42),
    ("leading 0 integer", "042", 42),
    ("leading 0 negative integer", "-042", -42),
    ("long integer", "123456789012345", 123456789012345),
    ("long negative integer", "-123456789012345", -123456789012345),
    ("simple decimal", "1.23", 1.23),
    ("negative decimal", "-1.23", -1.23),
    ("tricky precision decimal", "123456789012.1", 123456789012.1),
    ("decimal with three fractional digits", "1.123", 1.123),
    ("negative decimal with three fractional digits", "-1.123", -1.123),
    ("basic string", '"foo bar"', "foo bar"),
    ("empty string", '""', ""),
    ("whitespace string", '"   "', "   "),
    ("string quoting", r'"foo \"bar\" \\ baz"', 'foo "bar" \\ baz'),
    ("basic token - item", "a_b-c.d3:f%00/*", T("a_b-c.d3:f%00/*")),
    ("token with capitals", "fooBar", T("fooBar")),
    ("token starting with capitals", "FooBar", T("FooBar")),
    ("token starting with *", "*foo", T("*foo")),
    ("basic binary", ":aGVsbG8=:", b"hello"),
    ("empty binary", "::", b""),
    ("bad padding (accepted)", ":aGVsbG8:", b"hello"),
    ("non-ASCII binary", ":/+Ah:", b"\xff\xe0!"),
    ("basic true boolean", "?1", True),
    ("basic false boolean", "?0", False),
    ("date", "@1659578233", Date(1659578233)),
    ("negative date", "@-1659578233", Date(-1659578233)),
    ("basic display string (ascii content)", '%"foo bar"', DisplayString("foo bar")),
    ("non-ascii display string (lowercase escaping)", '%"f%c3%bc%c3%bc"', DisplayString("füü")),
    ("display string quoting", '%"foo %22bar%22 \\ baz"', DisplayString('foo "bar" \\ baz')),
    ("BOM in display string", '%"BOM: %ef%bb%bf"', DisplayString("BOM: \ufeff")),
    ("leading and trailing space", "  1  ", 1),
]

ITEM_FAILURES = [
    ("empty item", ""),
    ("double negative zero", "--0"),
    ("comma", "2,3"),
    ("negative non-DIGIT first character", "-a23"),
    ("sign out of place", "4-2"),
    ("whitespace after sign", "- 42"),
    ("too long integer", "1234567890123456"),
    ("negative too long integer", "-1234567890123456"),
    ("decimal, whitespace after decimal", "1. 23"),
    ("decimal, whitespace before decimal", "1 .23"),
    ("double decimal decimal", "1.5.4"),
    ("adjacent double decimal decimal", "1..4"),
    ("decimal with four fractional digits", "1.1234"),
    ("decimal with thirteen integer digits", "1234567890123.0"),
    ("decimal ending in a dot", "1."),
    ("non-ascii string", '"füü"'),
    ("tab in string", '"\t"'),
    ("newline in string", '" \n "'),
    ("single quoted string", "'foo'"),
    ("unbalanced string", '"foo'),
    ("bad string quoting", r'"foo \,"'),
    ("ending string quote", '"foo \\"'),
    ("abruptly ending string quote", '"foo \\'),
    ("bad end delimiter", ":aGVsbG8="),
    ("extra whitespace in binary", ":aGVsb G8=:"),
    ("extra chars in binary", ":aGVsbG!8=:"),
    ("suffix chars in binary", ":aGVsbG8=!:"),
    ("base64url binary", ":_-Ah:"),
    ("unknown boolean", "?Q"),
    ("whitespace boolean", "? 1"),
    ("spelled-out True boolean", "?True"),
    ("decimal date", "@1659578233.12"),
    ("empty date", "@"),
    ("too large date", "@1000000000000000"),
    ("non-ascii display string (uppercase escaping)", '%"f%C3%BC%C3%BC"'),
    ("tab in display string", '%"\t"'),
    ("unquoted display string", "%foo"),
    ("unbalanced display string", '%"foo'),
    ("bad display string escaping", '%"foo %a"'),
    ("bad display string utf-8 (invalid 2-byte seq)", '%"%c3%28"'),
    ("bad display string utf-8 (invalid sequence id)", '%"%a0%a1"'),
    ("bad display string utf-8 (invalid 4-byte seq)", '%"%f0%28%8c%28"'),
]


@pytest.mark.parametrize(("name", "raw", "expected"), LISTS, ids=[case[0] for case in LISTS])
def test_list_vectors(name: str, raw: str, expected: list[Any] | None) -> None:
    """Valid List field values parse to the members and parameters the vectors expect."""
    members = parse_list(raw)
    assert members is not None, name
    if expected is not None:
        assert [plain(member) for member in members] == expected


@pytest.mark.parametrize(("name", "raw"), LIST_FAILURES, ids=[case[0] for case in LIST_FAILURES])
def test_list_must_fail(name: str, raw: str) -> None:
    """Malformed List field values give None, never a partial list or an exception."""
    assert parse_list(raw) is None, name


@pytest.mark.parametrize(("name", "raw", "expected"), ITEMS, ids=[case[0] for case in ITEMS])
def test_item_vectors(name: str, raw: str, expected: Any) -> None:
    """Every bare item type parses to its Python value, with the exact type."""
    item = parse_item(raw)
    assert item is not None, name
    assert item.value == expected
    assert type(item.value) is type(expected)
    assert item.params == {}


@pytest.mark.parametrize(("name", "raw"), ITEM_FAILURES, ids=[case[0] for case in ITEM_FAILURES])
def test_item_must_fail(name: str, raw: str) -> None:
    """Malformed items give None, alone and as a List member."""
    assert parse_item(raw) is None, name
    if "," not in raw and raw.strip():
        assert parse_list(raw) is None, name


def test_item_parameters() -> None:
    """An Item field keeps its parameters (the Foo-Example vector)."""
    item = parse_item('2; foourl="https://foo.example.com/"')
    assert item == Item(2, {"foourl": "https://foo.example.com/"})
    assert parse_item("1; a; b=?0") == Item(1, {"a": True, "b": False})


def test_dictionary_vectors() -> None:
    """Dictionaries parse keys with values, bare keys as true, and inner lists."""
    assert {k: plain(v) for k, v in (parse_dictionary("a=?0, b, c; foo=bar") or {}).items()} == {
        "a": (False, {}),
        "b": (True, {}),
        "c": (True, {"foo": T("bar")}),
    }
    parsed = parse_dictionary("rating=1.5, feelings=(joy sadness)") or {}
    assert plain(parsed["feelings"]) == ([(T("joy"), {}), (T("sadness"), {})], {})
    assert parse_dictionary("a=1,") is None
    assert parse_dictionary('"a"=1') is None
    assert parse_dictionary("") == {}


@given(st.text(max_size=60))
def test_never_raises_on_text(value: str) -> None:
    """Arbitrary text gives a parse or None from every entry point, never an exception."""
    parse_list(value)
    parse_item(value)
    parse_dictionary(value)


@given(
    st.text(
        alphabet=st.sampled_from(list('abq=;,"()?:@%*-. 0123456789\tAZ/\\')),
        max_size=40,
    )
)
def test_never_raises_on_near_misses(value: str) -> None:
    """Text built from the grammar's own characters never makes the parser raise."""
    parse_list(value)
    parse_item(value)
    parse_dictionary(value)


def test_rejects_non_strings() -> None:
    """A value that is not a string is no field: None."""
    assert parse_list(None) is None  # type: ignore[arg-type]
    assert parse_item(b"1") is None  # type: ignore[arg-type]
    assert parse_dictionary(3) is None  # type: ignore[arg-type]
