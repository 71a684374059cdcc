"""A strict RFC 9651 Structured Fields parser for Lists, Dictionaries and Items.

The rate-limit fields (``RateLimit-Policy``, ``RateLimit``) are Lists of Items with Parameters;
the draft-07 ``RateLimit`` field was a Dictionary. This module parses exactly the grammar of
RFC 9651 section 4.2 (Integers, Decimals, Strings, Tokens, Byte Sequences, Booleans, Dates and
Display Strings, Inner Lists, Parameters) and answers None for anything malformed: it never
raises on field input. It has no dependency beyond the standard library.

Bare items map to Python values as follows: Integer -> ``int``, Decimal -> ``float``,
String -> ``str``, Byte Sequence -> ``bytes``, Boolean -> ``bool``, and `Token`, `Date` and
`DisplayString` for the three types a plain Python value would make ambiguous.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

__all__ = [
    "BareItem",
    "Date",
    "DisplayString",
    "InnerList",
    "Item",
    "Member",
    "Params",
    "Token",
    "parse_dictionary",
    "parse_item",
    "parse_list",
]


@dataclass(frozen=True, slots=True)
class Token:
    """A Token: an unquoted identifier such as ``burst`` or ``text/html``."""

    #: The token's characters, exactly as sent (tokens are case-sensitive).
    value: str


@dataclass(frozen=True, slots=True)
class DisplayString:
    """A Display String (``%"..."``): Unicode text meant for people, percent-decoded."""

    #: The decoded text.
    value: str


@dataclass(frozen=True, slots=True)
class Date:
    """A Date (``@1659578233``): whole seconds since the Unix epoch."""

    #: Seconds since 1970-01-01T00:00:00Z; may be negative.
    seconds: int


BareItem: TypeAlias = "int | float | str | bytes | bool | Token | DisplayString | Date"
Params: TypeAlias = "dict[str, BareItem]"


class Item(NamedTuple):
    """An Item: a bare value and its Parameters (in the order sent, a repeated key's last value)."""

    #: The bare item.
    value: BareItem
    #: The parameters, by key.
    params: Params


class InnerList(NamedTuple):
    """An Inner List: ``(a b c);param=1``."""

    #: The member items, in order.
    items: tuple[Item, ...]
    #: The parameters of the inner list as a whole.
    params: Params


Member: TypeAlias = "Item | InnerList"


class _Malformed(ValueError):
    """Raised inside the parser only; the public functions turn it into None."""


_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUMBER = re.compile(r"-?([0-9]+)(?:(\.)([0-9]*))?")
_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_ESCAPE = re.compile(r"\\(.)")
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")
_DISPLAY = re.compile(r'%"((?:[\x20\x21\x23\x24\x26-\x7e]|%[0-9a-f]{2})*)"')
_PERCENT = re.compile(rb"%([0-9a-f]{2})")
_OWS = " \t"


def _number(text: str, i: int) -> tuple[int | float, int]:
    match = _NUMBER.match(text, i)
    if match is None:
        raise _Malformed("number")
    whole, dot, fraction = match.groups()
    if dot is None:
        if len(whole) > 15:
            raise _Malformed("integer too long")
        return int(match[0]), match.end()
    if len(whole) > 12 or not fraction or len(fraction) > 3:
        raise _Malformed("decimal out of range")
    return float(match[0]), match.end()


def _bare_item(text: str, i: int) -> tuple[BareItem, int]:
    char = text[i : i + 1]
    if char == "-" or "0" <= char <= "9":
        return _number(text, i)
    if char == '"':
        match = _STRING.match(text, i)
        if match is None:
            raise _Malformed("string")
        return _ESCAPE.sub(r"\1", match[1]), match.end()
    if char == "*" or ("a" <= char <= "z") or ("A" <= char <= "Z"):
        match = _TOKEN.match(text, i)
        assert match is not None  # the first character was checked above
        return Token(match[0]), match.end()
    if char == ":":
        match = _BYTES.match(text, i)
        if match is None:
            raise _Malformed("byte sequence")
        data = match[1]
        try:
            decoded = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise _Malformed("byte sequence") from None
        return decoded, match.end()
    if char == "?":
        flag = text[i + 1 : i + 2]
        if flag not in ("0", "1"):
            raise _Malformed("boolean")
        return flag == "1", i + 2
    if char == "@":
        seconds, end = _number(text, i + 1)
        if not isinstance(seconds, int):
            raise _Malformed("date")
        return Date(seconds), end
    if char == "%":
        match = _DISPLAY.match(text, i)
        if match is None:
            raise _Malformed("display string")
        raw = _PERCENT.sub(lambda m: bytes((int(m[1], 16),)), match[1].encode("ascii"))
        try:
            return DisplayString(raw.decode("utf-8")), match.end()
        except UnicodeDecodeError:
            raise _Malformed("display string") from None
    raise _Malformed("bare item")


def _params(text: str, i: int) -> tuple[Params, int]:
    params: Params = {}
    while text[i : i + 1] == ";":
        i += 1
        while text[i : i + 1] == " ":
            i += 1
        match = _KEY.match(text, i)
        if match is None:
            raise _Malformed("parameter key")
        i = match.end()
        value: BareItem = True
        if text[i : i + 1] == "=":
            value, i = _bare_item(text, i + 1)
        params[match[0]] = value
    return params, i


def _item(text: str, i: int) -> tuple[Item, int]:
    value, i = _bare_item(text, i)
    params, i = _params(text, i)
    return Item(value, params), i


def _member(text: str, i: int) -> tuple[Member, int]:
    if text[i : i + 1] != "(":
        return _item(text, i)
    i += 1
    items: list[Item] = []
    while True:
        while text[i : i + 1] == " ":
            i += 1
        if text[i : i + 1] == ")":
            params, i = _params(text, i + 1)
            return InnerList(tuple(items), params), i
        item, i = _item(text, i)
        items.append(item)
        if text[i : i + 1] not in (" ", ")"):
            raise _Malformed("inner list")


def _after_member(text: str, i: int) -> int | None:
    """Skip OWS and one comma between members: the next member's index, or None at the end."""
    end = len(text)
    while i < end and text[i] in _OWS:
        i += 1
    if i == end:
        return None
    if text[i] != ",":
        raise _Malformed("expected a comma")
    i += 1
    while i < end and text[i] in _OWS:
        i += 1
    if i == end:
        raise _Malformed("trailing comma")
    return i


def _strip(value: object) -> str | None:
    # HTTP trims a field value's surrounding whitespace before Structured Fields see it.
    return value.strip(_OWS) if isinstance(value, str) else None


def parse_list(value: str) -> tuple[Member, ...] | None:
    """The members of a List field value, or None when it is not a valid List.

    Repeated field lines are combined by joining them with ``", "`` first (as
    `forbear._retry_after.header_value` does). An empty value is the empty List.
    """
    text = _strip(value)
    if text is None:
        return None
    members: list[Member] = []
    i: int | None = 0 if text else None
    try:
        while i is not None:
            member, i = _member(text, i)
            members.append(member)
            i = _after_member(text, i)
    except (ValueError, IndexError):
        return None
    return tuple(members)


def parse_dictionary(value: str) -> dict[str, Member] | None:
    """The members of a Dictionary field value by key, or None when it is not valid.

    A key sent without a value is the Boolean true (with its parameters); a repeated key keeps
    its first position and its last value.
    """
    text = _strip(value)
    if text is None:
        return None
    members: dict[str, Member] = {}
    i: int | None = 0 if text else None
    try:
        while i is not None:
            match = _KEY.match(text, i)
            if match is None:
                return None
            i = match.end()
            member: Member
            if text[i : i + 1] == "=":
                member, i = _member(text, i + 1)
            else:
                params, i = _params(text, i)
                member = Item(True, params)
            members[match[0]] = member
            i = _after_member(text, i)
    except (ValueError, IndexError):
        return None
    return members


def parse_item(value: str) -> Item | None:
    """An Item field value, or None when it is not exactly one valid Item."""
    text = _strip(value)
    if not text:
        return None
    try:
        item, i = _item(text, 0)
    except (ValueError, IndexError):
        return None
    return item if i == len(text) else None
