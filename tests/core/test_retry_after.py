"""`parse_retry_after` and `parse_http_date`: strict RFC 9110 parsing that never raises.

Every date is judged against an injected ``wall`` clock, so nothing here reads the time.
"""

from __future__ import annotations

import time

import pytest

from forbear import parse_retry_after
from forbear._retry_after import header_value, parse_http_date

#: RFC 9110's example date, "Sun, 06 Nov 1994 08:49:37 GMT", as Unix time.
RFC_EXAMPLE = 784_111_777.0
#: A wall clock ten seconds before the example date.
WALL = RFC_EXAMPLE - 10.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("5", 5.0),
        ("120", 120.0),
        ("007", 7.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        (" 5", 5.0),
        ("5 ", 5.0),
        ("\t5\t", 5.0),
        ("  2.5  ", 2.5),
    ],
)
def test_delta_seconds(value: str, expected: float) -> None:
    """Delta-seconds, fractional tolerated, with surrounding spaces or tabs, are read exactly."""
    assert parse_retry_after(value, wall=WALL) == expected


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "  Sun, 06 Nov 1994 08:49:37 GMT\t",
    ],
    ids=["imf-fixdate", "rfc850", "asctime", "imf-fixdate-padded"],
)
def test_http_date_forms(value: str) -> None:
    """All three HTTP-date forms give the seconds from the wall clock to the date."""
    assert parse_retry_after(value, wall=WALL) == 10.0
    assert parse_http_date(value, wall=WALL) == RFC_EXAMPLE


@pytest.mark.parametrize(
    "value",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
)
def test_past_date_is_zero(value: str) -> None:
    """An HTTP-date already in the past means "retry now": 0.0, never negative."""
    assert parse_retry_after(value, wall=RFC_EXAMPLE + 3600) == 0.0


def test_date_at_wall_is_zero() -> None:
    """An HTTP-date equal to the wall clock waits nothing."""
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", wall=RFC_EXAMPLE) == 0.0


@pytest.mark.parametrize(
    ("two_digit", "year"),
    [("26", 2026), ("76", 2076), ("77", 1977), ("99", 1999), ("00", 2000)],
)
def test_rfc850_two_digit_year(two_digit: str, year: int) -> None:
    """An RFC 850 year more than 50 years ahead of the wall clock is in the past century."""
    wall_2026 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    parsed = parse_http_date(f"Thursday, 01-Jan-{two_digit} 00:00:00 GMT", wall=wall_2026)
    assert parsed is not None
    assert time.gmtime(parsed).tm_year == year


@pytest.mark.parametrize(
    "value",
    [
        "-1",
        "+1",
        "1e3",
        "1E3",
        "inf",
        "Infinity",
        "nan",
        "NaN",
        "",
        " ",
        "\t",
        "garbage",
        "soon",
        "\u0665",  # Arabic-Indic digit five
        "\u0661\u0660",  # Arabic-Indic "10"
        "\uff15",  # full-width digit five
        "\uff11\uff10",  # full-width "10"
        "\u00a05",  # a no-break space is not HTTP whitespace
        "1.",
        ".5",
        "1.5.5",
        "1,5",
        "0x10",
        "1_000",
        "5s",
        "5 seconds",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "sun, 06 nov 1994 08:49:37 gmt",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun Nov  0 08:49:37 1994",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "1994-11-06T08:49:37Z",
    ],
)
def test_invalid_values_are_none(value: str) -> None:
    """Signs, exponents, non-numbers, non-ASCII digits and malformed dates are not a delay."""
    assert parse_retry_after(value, wall=WALL) is None


def test_none_is_none() -> None:
    """A missing header (None) is not a delay."""
    assert parse_retry_after(None, wall=WALL) is None


def test_leap_second_is_accepted() -> None:
    """A leap second (:60) in an HTTP-date parses, one second after :59."""
    leap = parse_http_date("Sun, 06 Nov 1994 08:49:60 GMT", wall=WALL)
    assert leap == RFC_EXAMPLE + 23


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5, 5", 5.0),
        ("5,5", 5.0),
        ("5 ,\t5, 5", 5.0),
        ("1, 2", None),
        ("5, 6", None),
        ("5, abc", None),
        ("5,", None),
        (", 5", None),
        ("-1, -1", None),
    ],
)
def test_joined_repeated_field(value: str, expected: float | None) -> None:
    """Identical repeated values count as one; disagreeing or broken ones are no delay."""
    assert parse_retry_after(value, wall=WALL) == expected


def test_absurd_delta_is_clamped_and_finite() -> None:
    """A delta too large for a float is clamped to a finite number, never inf or an error."""
    wait = parse_retry_after("9" * 400, wall=WALL)
    assert wait is not None
    assert wait == 1e9


def test_far_future_date_is_clamped() -> None:
    """A date centuries ahead is clamped to the same finite ceiling."""
    wait = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", wall=WALL)
    assert wait == 1e9


def test_default_wall_reads_the_clock() -> None:
    """Without ``wall``, an HTTP-date is judged against the current time (a past date is 0)."""
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0
    assert parse_retry_after("3") == 3.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "5"}, "5"),
        ({"retry-after": "5"}, "5"),
        ({"RETRY-AFTER": "5"}, "5"),
        ({"Other": "5"}, None),
        ({}, None),
        ({"Retry-After": b"5"}, None),
        ({"Retry-After": None}, None),
    ],
)
def test_header_value_plain_dict(headers: dict[str, object], expected: str | None) -> None:
    """A plain dict is read case-insensitively; a non-text value reads as absent."""
    assert header_value(headers, "Retry-After") == expected


def test_header_value_joins_repeated_fields_from_httpx() -> None:
    """A repeated field in httpx ``Headers`` is joined with ", " (and then conflicts)."""
    httpx = pytest.importorskip("httpx")
    headers = httpx.Headers([("Retry-After", "1"), ("retry-after", "2")])
    assert header_value(headers, "Retry-After") == "1, 2"
    assert parse_retry_after(header_value(headers, "Retry-After")) is None


def test_header_value_reads_aiohttp_multidict() -> None:
    """aiohttp's multidict is read through ``getall``, case-insensitively."""
    multidict = pytest.importorskip("multidict")
    headers = multidict.CIMultiDict([("Retry-After", "5"), ("retry-after", "5")])
    assert header_value(headers, "RETRY-AFTER") == "5, 5"
    assert header_value(headers, "X-Missing") is None


def test_header_value_reads_requests_case_insensitive_dict() -> None:
    """requests' ``CaseInsensitiveDict`` is read through its own ``get``."""
    structures = pytest.importorskip("requests.structures")
    headers = structures.CaseInsensitiveDict({"Retry-After": "7"})
    assert header_value(headers, "retry-after") == "7"
