"""Reading the server's requested wait: ``Retry-After`` (rate-limit resets: `forbear._ratelimit`).

Strict on purpose: RFC 9110 section 10.2.3 allows delta-seconds (ASCII digits; a fraction is
tolerated) or an HTTP-date in one of three forms (section 5.6.7). Anything else, including
several conflicting values joined by a comma, means "the server named no valid wait" and the
caller falls back to backoff. Nothing in this module raises on header input.
"""

from __future__ import annotations

import calendar
import math
import re
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "field_names",
    "header_value",
    "parse_http_date",
    "parse_retry_after",
    "retry_after_is_date",
]

#: Waits are clamped here so that an absurd value stays a plain, comparable float.
_LONGEST = 1e9

_DELTA = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTH = r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
_IMF_FIXDATE = re.compile(
    rf"{_DAY}, (?P<day>[0-9]{{2}}) {_MONTH} (?P<year>[0-9]{{4}}) {_TIME} GMT", re.ASCII
)
_RFC850 = re.compile(
    rf"{_LONG_DAY}, (?P<day>[0-9]{{2}})-{_MONTH}-(?P<year>[0-9]{{2}}) {_TIME} GMT", re.ASCII
)
_ASCTIME = re.compile(
    rf"{_DAY} {_MONTH} (?P<day>[ 0-9][0-9]) {_TIME} (?P<year>[0-9]{{4}})", re.ASCII
)


def field_names(headers: Mapping[str, str] | Any) -> str | None:
    """Every field name in ``headers``, lower-cased and joined by newlines, or None when they
    cannot be read so: a quick look for a name before the fields are read one by one (a name
    absent from it is in no field; one present may still be part of a longer name)."""
    try:
        return "\n".join(headers.keys()).lower()
    except Exception:  # no keys(), or a name that is not a str
        return None


def header_value(
    headers: Mapping[str, str] | Any, name: str, names: str | None = None
) -> str | None:
    """One header's value, with repeated fields joined by ``", "`` as RFC 9110 allows.

    Works with a plain ``dict`` (any case), httpx ``Headers``, requests' case-insensitive
    dict and aiohttp's multidict, without importing any of them. ``names``: a plain dict's
    `field_names`, when the caller has them already.
    """
    if type(headers) is dict:  # a plain dict has no multi-value API: skip probing for one
        return _dict_value(headers, name, names)
    get_all = getattr(headers, "get_list", None) or getattr(headers, "getall", None)
    if get_all is not None:
        try:
            values = get_all(name, [])
        except (TypeError, KeyError):
            values = []
        return ", ".join(values) if values else None
    if isinstance(headers, dict):
        return _dict_value(headers, name)
    value = headers.get(name)
    return value if isinstance(value, str) else None


def _dict_value(headers: dict[Any, Any], name: str, names: str | None = None) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        if names is None:
            names = field_names(headers)
        if names is not None and lowered not in names:
            return None  # in no case: most misses end here, without a look at each key
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == lowered:
                value = candidate
                break
    return value if isinstance(value, str) else None


def parse_http_date(value: str, *, wall: float | None = None) -> float | None:
    """The Unix time of an HTTP-date in IMF-fixdate, RFC 850 or asctime form, else None."""
    value = value.strip(" \t")
    match = _IMF_FIXDATE.fullmatch(value) or _ASCTIME.fullmatch(value)
    year: int
    if match is not None:
        year = int(match["year"])
    else:
        match = _RFC850.fullmatch(value)
        if match is None:
            return None
        # RFC 9110 5.6.7: a two-digit year more than 50 years ahead is in the past century.
        now_year = time.gmtime(time.time() if wall is None else wall).tm_year
        year = now_year - now_year % 100 + int(match["year"])
        if year > now_year + 50:
            year -= 100
    try:
        fields = (
            year,
            _MONTHS[match["month"]],
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
        )
        if not (1 <= fields[2] <= calendar.monthrange(year, fields[1])[1]):
            return None
        if fields[3] > 23 or fields[4] > 59 or fields[5] > 60:
            return None
        return float(calendar.timegm((*fields, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def _parse_one(value: str, wall: float | None) -> float | None:
    if _DELTA.fullmatch(value):
        seconds = float(value)
        return min(seconds, _LONGEST) if math.isfinite(seconds) else _LONGEST
    when = parse_http_date(value, wall=wall)
    if when is None:
        return None
    now = time.time() if wall is None else wall
    return min(max(when - now, 0.0), _LONGEST)


def parse_retry_after(value: str | None, *, wall: float | None = None) -> float | None:
    """Seconds to wait from ``wall`` (Unix time; default now) for a ``Retry-After`` value.

    Returns None for anything that is not one valid delay: garbage, signs, exponents, non-ASCII
    digits, an empty value, or several values that disagree. A date in the past gives 0.0.
    """
    if not isinstance(value, str):
        return None
    value = value.strip(" \t")
    if not value:
        return None
    single = _parse_one(value, wall)
    if single is not None or "," not in value:
        return single
    # A repeated field arrives joined by commas. Identical repeats are one value; anything
    # else is a conflict. An HTTP-date has a comma of its own, so repeats are found by length.
    repeated = _repeated(value)
    return None if repeated is None else _parse_one(repeated, wall)


def retry_after_is_date(value: str) -> bool:
    """Whether a valid ``Retry-After`` value names an HTTP-date (an absolute time)."""
    value = value.strip(" \t")
    if _DELTA.fullmatch(value):
        return False
    return parse_http_date(_repeated(value) or value) is not None


#: The most repeats of one ``Retry-After`` value recognised as one value.
_MAX_REPEATS = 8


def _repeated(value: str) -> str | None:
    """The one value ``value`` repeats, joined by commas (``"2, 2"``, two equal dates), or None."""
    parts = {part.strip(" \t") for part in value.split(",")}
    if len(parts) == 1:
        return parts.pop()
    for separator in (", ", ","):
        for count in range(2, _MAX_REPEATS + 1):
            width, extra = divmod(len(value) + len(separator), count)
            if extra == 0 and width > len(separator):
                part = value[: width - len(separator)]
                if separator.join([part] * count) == value:
                    return part.strip(" \t")
    return None
