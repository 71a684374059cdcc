"""`forbear._ratelimit`: rate-limit headers in every dialect, read into policies and limits.

Table tests per dialect use the example values of each vendor's public documentation (the IETF
draft's examples, GitHub's REST rate-limit headers, Discord's rate-limit headers, OpenAI's
rate-limit headers); hypothesis checks that no header value raises or yields a wait outside
``[0, MAX_RESET]``. Every absolute time is judged against an injected clock.
"""

from __future__ import annotations

import dataclasses
import math
from email.utils import formatdate
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forbear._ratelimit import (
    ABSURD_FROM,
    EPOCH_MILLIS_FROM,
    EPOCH_SECONDS_FROM,
    MAX_RESET,
    AnnouncedRate,
    Limits,
    QuotaPolicy,
    QuotaState,
    announced_rate,
    limits_wait,
    parse_reset,
    read_limits,
    reset_wait,
)

#: The client's clock in these tests: 2025-10-09T08:53:20Z.
WALL = 1_760_000_000.0
#: The response's ``Date`` for a server whose clock agrees with the client's.
DATE = formatdate(WALL, usegmt=True)


def limits(headers: Any, *, wall: float = WALL) -> Limits:
    """`read_limits` that must find something."""
    found = read_limits(headers, wall=wall)
    assert found is not None
    return found


# -- IETF draft: RateLimit-Policy and RateLimit ------------------------------------------------


def test_ietf_policies_from_the_draft() -> None:
    """Named policies read quota, window, default unit and no partition."""
    found = limits({"RateLimit-Policy": '"burst";q=100;w=60,"daily";q=1000;w=86400'})
    assert found.policies == (
        QuotaPolicy("burst", 100, 60.0, "requests", None),
        QuotaPolicy("daily", 1000, 86400.0, "requests", None),
    )
    assert found.states == ()
    assert (found.remaining, found.reset, found.source) == (None, None, "ratelimit-policy")


def test_ietf_state_from_the_draft() -> None:
    """``RateLimit: "default";r=50;t=30`` is 50 left, resetting in 30 seconds."""
    found = limits({"RateLimit": '"default";r=50;t=30'})
    assert found.states == (QuotaState("default", 50, 30.0, None, "requests", "ratelimit"),)
    assert (found.remaining, found.reset, found.source) == (50, 30.0, "ratelimit")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("burst;q=100;w=60", QuotaPolicy("burst", 100, 60.0, "requests", None)),
        (
            '"peruser";q=100;w=60;pk=user123',
            QuotaPolicy("peruser", 100, 60.0, "requests", "user123"),
        ),
        (
            '"peruser";q=65535;w=10;pk=:dXNlcjEyMw==:;qu="content-bytes"',
            QuotaPolicy("peruser", 65535, 10.0, "content-bytes", ":dXNlcjEyMw==:"),
        ),
        (
            '"c";q=5;qu="concurrent-requests"',
            QuotaPolicy("c", 5, None, "concurrent-requests", None),
        ),
        ('"a";q=10;w=1;acme-burst=5;comment="x"', QuotaPolicy("a", 10, 1.0, "requests", None)),
        ('"a";q=10', QuotaPolicy("a", 10, None, "requests", None)),
        ("100;w=60", QuotaPolicy(None, 100, 60.0, "requests", None)),
        ('"a";q=10;w=1;qu="Requests"', QuotaPolicy("a", 10, 1.0, "requests", None)),
    ],
)
def test_ietf_policy_items(policy: str, expected: QuotaPolicy) -> None:
    """Token or String names, pk, qu and the older ``100;w=60`` syntax; unknown params ignored."""
    assert limits({"ratelimit-policy": policy}).policies == (expected,)


@pytest.mark.parametrize(
    "policy",
    [
        '"a";w=60',  # no quota
        '"a";q="100";w=60',  # quota not an Integer
        '"a";q=-1;w=60',  # negative quota
        '"a";q=1.5;w=60',  # decimal quota
        '"a";q;w=60',  # quota without a value is a Boolean
        '"a";q=10;w=0',  # a zero window means nothing
        '"a";q=10;w="60"',  # window not an Integer
        '"a";q=10;qu=?1',  # unit not a String or Token
        "?1;q=10",  # a name must be a String or Token
        '("a" "b");q=10',  # an Inner List is no policy
    ],
)
def test_ietf_malformed_policy_items_are_ignored(policy: str) -> None:
    """A policy item missing ``q`` or carrying a wrongly typed parameter is ignored alone."""
    found = limits({"RateLimit-Policy": f'{policy}, "ok";q=1;w=1'})
    assert found.policies == (QuotaPolicy("ok", 1, 1.0, "requests", None),)


@pytest.mark.parametrize(
    "value",
    ['"burst";q=100;w=60,', "burst;q=100;w=60 daily", '"burst;q=100', "burst;Q=1", "burst;q =1"],
)
def test_ietf_malformed_field_is_ignored(value: str) -> None:
    """A field that is not a valid Structured List is ignored whole (MUST per the draft)."""
    assert read_limits({"RateLimit-Policy": value}, wall=WALL) is None


@pytest.mark.parametrize(
    "value",
    ['"a";t=30', '"a";r=-1;t=30', '"a";r=5;t=-1', '"a";r=5;t=1.5', '"a";r="5"', "5;r=5"],
)
def test_ietf_malformed_state_items_are_ignored(value: str) -> None:
    """A ``RateLimit`` item missing ``r`` or with a bad ``t`` is ignored; the others stay."""
    found = limits({"RateLimit": f'{value}, "ok";r=1;t=2'})
    assert [(s.name, s.remaining, s.reset) for s in found.states] == [("ok", 1, 2.0)]


def test_ietf_state_without_reset_and_with_partition() -> None:
    """``r`` without ``t`` has no reset; ``pk`` is kept as the partition."""
    found = limits({"RateLimit": "default;r=999;pk=trial-121323"})
    assert found.states == (
        QuotaState("default", 999, None, "trial-121323", "requests", "ratelimit"),
    )


def test_ietf_state_takes_its_policy_unit() -> None:
    """A state takes the unit of the policy with its name (and partition)."""
    found = limits(
        {
            "RateLimit-Policy": '"bytes";q=1000;w=60;qu="content-bytes", "reqs";q=10;w=1',
            "RateLimit": '"bytes";r=0;t=40, "reqs";r=5;t=1',
        }
    )
    assert [(s.name, s.unit) for s in found.states] == [
        ("bytes", "content-bytes"),
        ("reqs", "requests"),
    ]
    # Exhausted comes first, whatever the unit: no request with a body gets through either.
    assert (found.remaining, found.reset) == (0, 40.0)


def test_ietf_draft07_dictionary() -> None:
    """Draft-07's ``RateLimit: limit=100, remaining=50, reset=5`` Dictionary is understood."""
    found = limits({"RateLimit": "limit=100, remaining=0, reset=5"})
    assert found.policies == (QuotaPolicy(None, 100, None, "requests", None),)
    assert found.states == (QuotaState(None, 0, 5.0, None, "requests", "ratelimit"),)
    assert reset_wait({"RateLimit": "limit=100, remaining=0, reset=5"}, status=200) == (
        5.0,
        "ratelimit",
    )


def test_ietf_exhausted_state_gives_the_wait_on_any_status() -> None:
    """``r=0`` gives the reset as the wait even on a success; ``r>0`` only on a 429."""
    exhausted = {"RateLimit": '"burst";r=0;t=30, "daily";r=900;t=4000'}
    assert reset_wait(exhausted, status=200, wall=WALL) == (30.0, "ratelimit")
    assert reset_wait(exhausted, status=503, wall=WALL) == (30.0, "ratelimit")
    left = {"RateLimit": '"burst";r=3;t=30, "daily";r=900;t=4000'}
    assert reset_wait(left, status=200, wall=WALL) is None
    assert reset_wait(left, status=429, wall=WALL) == (30.0, "ratelimit")


def test_several_exhausted_limits_wait_for_the_latest() -> None:
    """When two quotas are spent, the wait is the later reset: never shorter than meant."""
    headers = {"RateLimit": '"burst";r=0;t=30, "daily";r=0;t=4000'}
    assert reset_wait(headers, status=429, wall=WALL) == (4000.0, "ratelimit")


def test_ietf_reset_that_is_an_epoch_is_not_read_as_a_delay() -> None:
    """A ``t`` that is really a Unix time counts from the response's ``Date``."""
    headers = {"Date": DATE, "RateLimit": f'"a";r=0;t={int(WALL) + 45}'}
    assert reset_wait(headers, status=429, wall=0.0) == (45.0, "ratelimit")


def test_x_ratelimit_policy_alias() -> None:
    """``X-RateLimit-Policy`` is read like ``RateLimit-Policy``."""
    found = limits({"X-RateLimit-Policy": "10;w=1"})
    assert found.policies == (QuotaPolicy(None, 10, 1.0, "requests", None),)
    assert found.source == "x-ratelimit-policy"


# -- The older drafts: RateLimit-Limit / -Remaining / -Reset ----------------------------------


def test_older_draft_triplet() -> None:
    """``RateLimit-Reset`` is delta seconds; the source is that header."""
    headers = {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "50"}
    found = limits(headers)
    assert found.policies == (QuotaPolicy(None, 100, None, "requests", None),)
    assert (found.remaining, found.reset, found.source) == (0, 50.0, "ratelimit-reset")
    assert reset_wait(headers, status=200, wall=WALL) == (50.0, "ratelimit-reset")


def test_older_draft_limit_with_policies() -> None:
    """``RateLimit-Limit: 10, 10;w=1, 50;w=60`` (drafts 01-03) announces two windows."""
    found = limits({"RateLimit-Limit": "10, 10;w=1, 50;w=60", "RateLimit-Remaining": "9"})
    assert found.policies == (
        QuotaPolicy(None, 10, 1.0, "requests", None),
        QuotaPolicy(None, 50, 60.0, "requests", None),
    )


def test_older_draft_policy_field() -> None:
    """``RateLimit-Policy: 10;w=1, 50;w=60`` (drafts 04-07) lists anonymous policies."""
    found = limits({"RateLimit-Policy": "10;w=1, 50;w=60"})
    assert [(p.quota, p.window) for p in found.policies] == [(10, 1.0), (50, 60.0)]


# -- X-RateLimit: GitHub, Discord and the rest ------------------------------------------------


def test_github_reset_is_epoch_seconds_against_the_date_header() -> None:
    """GitHub's documented example: reset 1372700873 with Date 17:27:06 is 1247 s away."""
    headers = {
        "Date": "Mon, 01 Jul 2013 17:27:06 GMT",
        "x-ratelimit-limit": "60",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-used": "60",
        "x-ratelimit-reset": "1372700873",
        "x-ratelimit-resource": "core",
    }
    # The client's clock is years off: the Date header cancels the skew.
    found = limits(headers, wall=WALL)
    assert found.states == (
        QuotaState(None, 0, 1247.0, "core", "requests", "x-ratelimit-reset", dated=True, limit=60),
    )
    assert found.dated
    assert found.policies == (QuotaPolicy(None, 60, None, "requests", "core"),)
    assert reset_wait(headers, status=403, wall=WALL) == (1247.0, "x-ratelimit-reset")


def test_epoch_reset_without_a_date_header_uses_the_wall_clock() -> None:
    """Without a valid ``Date``, an absolute reset counts from the client's clock."""
    for date in (None, "yesterday"):
        headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(WALL) + 90)}
        if date is not None:
            headers["Date"] = date
        assert reset_wait(headers, status=429, wall=WALL) == (90.0, "x-ratelimit-reset")


def test_skew_is_corrected_with_the_date_header() -> None:
    """A server clock 100 s ahead of the client's gives reset - Date, not reset - wall."""
    server_now = WALL + 100.0
    headers = {
        "Date": formatdate(server_now, usegmt=True),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(server_now) + 30),
    }
    assert reset_wait(headers, status=429, wall=WALL) == (30.0, "x-ratelimit-reset")


def test_discord_reset_after_wins_over_the_epoch() -> None:
    """Discord's documented headers: ``Reset-After`` (seconds) is the wait, with the bucket."""
    headers = {
        "Date": DATE,
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{WALL + 64.57:.3f}",
        "X-RateLimit-Reset-After": "64.57",
        "X-RateLimit-Bucket": "abcd1234",
    }
    found = limits(headers)
    assert found.states == (
        QuotaState(None, 0, 64.57, "abcd1234", "requests", "x-ratelimit-reset-after", limit=5),
    )
    assert reset_wait(headers, status=429) == (64.57, "x-ratelimit-reset-after")


def test_discord_epoch_with_decimals() -> None:
    """Discord's ``X-RateLimit-Reset: 1470173023.123`` is epoch seconds with milliseconds."""
    headers = {
        "Date": "Tue, 02 Aug 2016 21:23:40 GMT",  # 1470173020
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1470173023.123",
    }
    wait = reset_wait(headers, status=429, wall=WALL)
    assert wait is not None
    assert wait[0] == pytest.approx(3.123)


# -- OpenAI: durations and per-unit twins -------------------------------------------------------

OPENAI = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-reset-tokens": "6m0s",
}


def test_openai_documented_headers() -> None:
    """One state per unit. The documented example (59 of 60 left, whole in 1 s) may have used
    anything from just over none to one request: it names no refill rate."""
    found = limits(OPENAI)
    assert [(s.name, s.remaining, s.reset, s.unit, s.source) for s in found.states] == [
        ("requests", 59, 1.0, "requests", "x-ratelimit-reset-requests"),
        ("tokens", 149984, 360.0, "tokens", "x-ratelimit-reset-tokens"),
    ]
    requests_policy = found.policies[0]
    assert (requests_policy.name, requests_policy.quota, requests_policy.window) == (
        "requests",
        60,
        None,
    )
    assert announced_rate(found) is None


@pytest.mark.parametrize(
    ("remaining", "reset", "rate"),
    [
        # 10 used, whole again in 10 s: more than 9 were used, so >= 0.9/s (1.0/s at most).
        ("50", "10s", 0.9),
        # A bucket of 11 at 200/s, empty (0.4 of a unit back): whole in 53 ms; the refill is
        # 10.6 / 0.053 = 200/s, read as 10 / 0.053 = 189/s, never above it.
        ("0", "53ms", 10 / 0.053),
    ],
)
def test_openai_refill_is_a_lower_bound(remaining: str, reset: str, rate: float) -> None:
    """(used - 1) / reset: ``remaining`` is rounded down, so the rate is never overstated."""
    limit = "60" if remaining == "50" else "11"
    found = limits(
        {
            "x-ratelimit-limit-requests": limit,
            "x-ratelimit-remaining-requests": remaining,
            "x-ratelimit-reset-requests": reset,
        }
    )
    pace = announced_rate(found)
    assert pace is not None and pace.rate == pytest.approx(rate)
    assert pace.bound
    assert pace.refilling is (remaining == "0")


def test_openai_exhausted_requests_wait_for_their_reset() -> None:
    """With no requests left the wait is ``x-ratelimit-reset-requests``."""
    headers = {
        **OPENAI,
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "12ms",
    }
    assert reset_wait(headers, status=429) == (0.012, "x-ratelimit-reset-requests")


def test_openai_exhausted_tokens_wait_for_theirs() -> None:
    """With no tokens left the wait is the tokens' reset: an exhausted unit binds."""
    headers = {**OPENAI, "x-ratelimit-remaining-tokens": "0"}
    assert reset_wait(headers, status=429) == (360.0, "x-ratelimit-reset-tokens")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("6m0s", 360.0),
        ("12ms", 0.012),
        ("1s", 1.0),
        ("0s", 0.0),
        ("1h2m3.5s", 3723.5),
        ("2m59.56s", 179.56),
        ("250us", 0.00025),
        ("20ns", 2e-8),
    ],
)
def test_durations(value: str, seconds: float) -> None:
    """Go-style durations add up their parts."""
    assert parse_reset(value, wall=WALL) == pytest.approx(seconds)


# -- reset forms and the magnitude thresholds -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("30", 30.0),
        ("1.5", 1.5),
        (" 30 ", 30.0),
        ("86400", 86400.0),
        (str(int(EPOCH_SECONDS_FROM) - 1), MAX_RESET),  # a delay of 31 years: clamped
        (str(int(WALL) + 60), 60.0),  # Unix seconds
        (f"{WALL + 2.5:.3f}", 2.5),  # Unix seconds with a fraction
        (str(int(WALL) - 60), 0.0),  # a reset in the past: no wait
        (str(int(WALL * 1000) + 5000), 5.0),  # Unix milliseconds
        (str(int(EPOCH_MILLIS_FROM) - 1), MAX_RESET),  # year 5138 as seconds
        (str(int(ABSURD_FROM)), MAX_RESET),  # no time at all
        ("9" * 40, None),  # too many digits to be a number at all
        ("2025-10-09T08:54:20Z", 60.0),  # RFC 3339
        ("2025-10-09T08:54:20.250Z", 60.25),
        ("2025-10-09T10:54:20+02:00", 60.0),
        ("2025-10-09 08:54:20z", 60.0),
        ("Thu, 09 Oct 2025 08:54:20 GMT", 60.0),  # HTTP-date
        ("30, 60", 60.0),  # repeats that disagree: the longest
        ("30, 30", 30.0),
        ("30, soon", None),
        ("-5", None),
        ("1e3", None),
        ("", None),
        ("soon", None),
        ("2025-02-30T00:00:00Z", None),
        ("2025-10-09T08:54:20+24:00", None),
        ("5m-3s", None),
        ("٣٠", None),  # non-ASCII digits
    ],
)
def test_reset_forms(value: str, seconds: float | None) -> None:
    """Every reset form normalises to seconds from the server's now, clamped, or None."""
    result = parse_reset(value, date=DATE, wall=WALL)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


def test_remaining_repeats_that_disagree_give_the_smallest() -> None:
    """Two ``X-RateLimit-Remaining`` values: the smaller one (the safe reading) counts."""
    found = limits({"X-RateLimit-Remaining": "5, 0", "X-RateLimit-Reset": "10"})
    assert (found.remaining, found.reset) == (0, 10.0)


def test_garbage_counts_are_ignored() -> None:
    """A remaining count that is not one is ignored; a field with nothing valid is no limit."""
    assert read_limits({"X-RateLimit-Remaining": "lots"}, wall=WALL) is None
    assert read_limits({"X-RateLimit-Remaining": "1" * 16}, wall=WALL) is None
    assert read_limits({"RateLimit": "garbage;;"}, wall=WALL) is None


# -- header containers and the fast path ----------------------------------------------------------


def test_no_rate_limit_headers() -> None:
    """Responses without any rate-limit field give None everywhere."""
    plain = {"Content-Type": "text/html", "Date": DATE, "Retry-After": "5"}
    for headers in (plain, {}, None, 42):
        assert read_limits(headers, wall=WALL) is None
        assert reset_wait(headers, status=429, wall=WALL) is None


def test_header_objects_of_every_client() -> None:
    """httpx, requests and aiohttp header objects read like a dict, in any case, repeats joined."""
    httpx = pytest.importorskip("httpx")
    structures = pytest.importorskip("requests.structures")
    multidict = pytest.importorskip("multidict")
    pairs = [("RateLimit", '"a";r=5;t=10'), ("ratelimit", '"b";r=0;t=20')]
    for headers in (
        httpx.Headers(pairs),
        multidict.CIMultiDict(pairs),
        multidict.CIMultiDictProxy(multidict.CIMultiDict(pairs)),
    ):
        found = limits(headers)
        assert [s.name for s in found.states] == ["a", "b"]
        assert (found.remaining, found.reset) == (0, 20.0)
    single = structures.CaseInsensitiveDict({"RATELIMIT": '"a";r=0;t=10'})
    assert reset_wait(single, status=200) == (10.0, "ratelimit")


def test_unreadable_headers_announce_nothing() -> None:
    """A header object that raises while read is treated as announcing nothing."""

    class Broken(dict[str, str]):
        def items(self) -> Any:
            raise RuntimeError("boom")

    assert read_limits(Broken({"RateLimit": '"a";r=0;t=1'})) is None
    assert read_limits({1: "x", "RateLimit": '"a";r=0;t=1'}, wall=WALL) is not None


def test_results_are_frozen() -> None:
    """Policies, states and limits are immutable, so cached parses can be shared."""
    found = limits({"RateLimit-Policy": '"a";q=1;w=1', "RateLimit": '"a";r=1;t=1'})
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.policies[0].quota = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.states[0].remaining = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.reset = 5.0  # type: ignore[misc]


def test_several_dialects_at_once() -> None:
    """A response carrying IETF and X- fields gives both; the tightest decides the wait."""
    headers = {
        "Date": DATE,
        "RateLimit-Policy": '"burst";q=100;w=60',
        "RateLimit": '"burst";r=10;t=30',
        "X-RateLimit-Limit": "1000",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(WALL) + 3600),
    }
    found = limits(headers)
    assert len(found.states) == 2
    assert (found.remaining, found.reset, found.source) == (0, 3600.0, "x-ratelimit-reset")
    assert limits_wait(found, status=200) == (3600.0, "x-ratelimit-reset")


# -- announced_rate ---------------------------------------------------------------------------


def test_rate_is_the_tightest_policy() -> None:
    """Of several request policies the slowest ``quota / window`` is the pace."""
    found = limits({"RateLimit-Policy": '"burst";q=100;w=60, "fast";q=10;w=1'})
    assert announced_rate(found) == AnnouncedRate(100 / 60, None, None)


def test_rate_uses_a_policy_state_when_known() -> None:
    """A policy with a current state paces at what is left over what remains of the window."""
    found = limits(
        {
            "RateLimit-Policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
            "RateLimit": '"burst";r=50;t=30, "daily";r=900;t=4000',
        }
    )
    # burst: 50 / 30 = 1.67/s; daily: 900 / 4000 = 0.225/s, the tightest.
    assert announced_rate(found) == AnnouncedRate(900 / 4000, None, None)


def test_rate_skips_an_exhausted_policy() -> None:
    """A spent quota is a wait (see reset_wait), not a rate of zero."""
    found = limits(
        {
            "RateLimit-Policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
            "RateLimit": '"burst";r=0;t=30',
        }
    )
    assert announced_rate(found) == AnnouncedRate(1000 / 86400, None, None)


def test_concurrency_and_other_units() -> None:
    """``concurrent-requests`` is an in-flight limit; ``content-bytes`` gives no request rate."""
    found = limits(
        {
            "RateLimit-Policy": (
                '"inflight";q=4;qu="concurrent-requests", '
                '"bytes";q=10;w=1;qu="content-bytes", '
                '"reqs";q=120;w=60;pk=:dXNlcjEyMw==:'
            )
        }
    )
    assert announced_rate(found) == AnnouncedRate(2.0, 4, ":dXNlcjEyMw==:")
    only = limits({"RateLimit-Policy": '"inflight";q=4;qu="concurrent-requests"'})
    assert announced_rate(only) == AnnouncedRate(None, 4, None)
    assert announced_rate(limits({"RateLimit-Policy": '"b";q=9;w=1;qu="content-bytes"'})) is None


def test_rate_from_an_anonymous_state() -> None:
    """GitHub's remaining over its reset is the pace when no window is announced."""
    found = limits(
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(int(WALL) + 3599),
            "Date": DATE,
        }
    )
    assert announced_rate(found) == AnnouncedRate(4999 / 3599, None, None)


def test_zero_quota_and_no_window_give_no_rate() -> None:
    """A zero quota or a policy without a window announces no rate."""
    assert announced_rate(limits({"RateLimit-Policy": '"a";q=0;w=60, "b";q=5'})) is None


# -- properties -------------------------------------------------------------------------------

NAMES = [
    "RateLimit-Policy",
    "RateLimit",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Bucket",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-output-tokens-remaining",
    "anthropic-ratelimit-output-tokens-reset",
    "Date",
]
VALUES = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(list('"abrtqwpk=;,:.-0123456789 smhZT@?()')), max_size=40),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.builds(lambda r, t: f'"a";r={r};t={t}', st.integers(-5, 10**16), st.integers(-5, 10**16)),
)


def check_limits(found: Limits | None) -> None:
    """Invariants of any `read_limits` result."""
    if found is None:
        return
    for state in found.states:
        if state.reset is not None:
            assert 0.0 <= state.reset <= MAX_RESET
            assert not math.isnan(state.reset)
        assert state.remaining is None or state.remaining >= 0
    for policy in found.policies:
        assert policy.quota >= 0
        assert policy.window is None or (policy.window > 0 and math.isfinite(policy.window))
    pace = announced_rate(found)
    if pace is not None:
        assert pace.rate is None or (pace.rate > 0 and math.isfinite(pace.rate))
        assert pace.concurrency is None or pace.concurrency > 0


@given(
    st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=6),
    st.sampled_from([200, 429, 503]),
    st.floats(min_value=0, max_value=4e9),
)
def test_arbitrary_values_never_raise_or_escape_the_clamp(
    headers: dict[str, str], status: int, wall: float
) -> None:
    """Any header values: no exception, every wait in [0, MAX_RESET], every rate positive."""
    check_limits(read_limits(headers, wall=wall))
    wait = reset_wait(headers, status=status, wall=wall)
    if wait is not None:
        seconds, source = wait
        assert 0.0 <= seconds <= MAX_RESET
        assert not math.isnan(seconds)
        assert source == source.lower()
        assert source in {name.lower() for name in headers}


@given(st.text(max_size=50), st.text(max_size=40), st.floats(allow_nan=False, min_value=-1e12))
def test_parse_reset_never_raises(value: str, date: str, wall: float) -> None:
    """`parse_reset` gives None or a clamped, non-negative number for any input."""
    result = parse_reset(value, date=date, wall=wall)
    assert result is None or 0.0 <= result <= MAX_RESET


# -- fast buckets: what each dialect says and what it cannot ---------------------------------


def test_ietf_spent_bucket_with_a_fast_policy_refills_rather_than_waits() -> None:
    """``r=0;t=1`` under a 200/s policy: ``t`` is whole seconds, so the next unit is within a
    second, and at 200/s it comes in 5 ms: paced at the policy, not paused for a second."""
    found = limits({"RateLimit-Policy": '"b";q=200;w=1', "RateLimit": '"b";r=0;t=1'})
    assert announced_rate(found) == AnnouncedRate(200.0, None, None, False, True)
    # A spent quota whose reset is further than a second, or slower than its next unit: a wait.
    slow = limits({"RateLimit-Policy": '"b";q=1;w=2', "RateLimit": '"b";r=0;t=1'})
    assert announced_rate(slow) is None
    far = limits({"RateLimit-Policy": '"b";q=200;w=1', "RateLimit": '"b";r=0;t=2'})
    assert announced_rate(far) is None


def test_ietf_remaining_with_the_quota_back_now_paces_at_the_policy() -> None:
    """``r=3;t=0``: the quota refills now; the policy is the pace, ``r`` the level."""
    found = limits({"RateLimit-Policy": '"b";q=200;w=1', "RateLimit": '"b";r=3;t=0'})
    assert found.remaining == 3
    assert announced_rate(found) == AnnouncedRate(200.0, None, None)


@pytest.mark.parametrize(
    ("remaining", "reset", "rate"),
    [
        ("10", "0.005", None),  # nearly full: 10 left say nothing about the pace after them
        ("5", "0.028", 5 / 0.028),  # half full: the refill bound and 5 / 0.028 agree
        ("2", "0.043", 2 / 0.043),  # low: what is left over the reset is the lower
        ("0", "0.053", 10 / 0.053),  # spent: the bucket refills at least (11 - 1) / 0.053
    ],
)
def test_draft_sub_second_reset_is_read_as_a_bucket(
    remaining: str, reset: str, rate: float | None
) -> None:
    """``RateLimit-Limit: 11`` with a reset under a second (a bucket of 11 at 200/s whole again
    in it): the rate is the lower of ``remaining / reset`` and ``(limit - remaining - 1) /
    reset``, never the 2,000/s that 10 left in 5 ms would say."""
    found = limits(
        {"RateLimit-Limit": "11", "RateLimit-Remaining": remaining, "RateLimit-Reset": reset}
    )
    pace = announced_rate(found)
    if rate is None:
        assert pace is None
    else:
        assert pace is not None and pace.rate == pytest.approx(rate) and pace.bound
        assert pace.rate <= 200.0
        assert not pace.refilling  # a spent one may be a window ending: waited for


#: Anthropic's documented response headers (RFC 3339 resets; requests and three token units).
ANTHROPIC = {
    "Date": "Sat, 25 Oct 2025 12:00:00 GMT",
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-requests-reset": "2025-10-25T12:00:01Z",
    "anthropic-ratelimit-tokens-limit": "50000",
    "anthropic-ratelimit-tokens-remaining": "49500",
    "anthropic-ratelimit-tokens-reset": "2025-10-25T12:01:00Z",
    "anthropic-ratelimit-input-tokens-limit": "40000",
    "anthropic-ratelimit-input-tokens-remaining": "39600",
    "anthropic-ratelimit-input-tokens-reset": "2025-10-25T12:00:36Z",
    "anthropic-ratelimit-output-tokens-limit": "8000",
    "anthropic-ratelimit-output-tokens-remaining": "0",
    "anthropic-ratelimit-output-tokens-reset": "2025-10-25T12:00:45.5Z",
}


def test_anthropic_documented_headers() -> None:
    """One refilling state per unit; the resets are RFC 3339 times against ``Date``; only
    ``requests`` is a request rate, the token units bind as waits."""
    found = limits(ANTHROPIC)
    assert [(s.name, s.remaining, s.reset, s.unit, s.dated) for s in found.states] == [
        ("requests", 49, 1.0, "requests", True),
        ("tokens", 49500, 60.0, "tokens", True),
        ("input-tokens", 39600, 36.0, "input-tokens", True),
        ("output-tokens", 0, 45.5, "output-tokens", True),
    ]
    assert all(s.refills for s in found.states)
    # Spent output tokens bind: the wait is their reset, named by its header.
    assert reset_wait(ANTHROPIC, status=429) == (45.5, "anthropic-ratelimit-output-tokens-reset")
    # One request used of 50 says no rate; tokens are no request rate at all.
    assert announced_rate(found) is None
    used = {**ANTHROPIC, "anthropic-ratelimit-requests-remaining": "40"}
    pace = announced_rate(limits(used))
    assert pace is not None and pace.rate == pytest.approx(9 / 1.0)


def test_anthropic_requests_spent_wait_for_their_reset() -> None:
    """No requests left and no ``Retry-After``: the wait is the requests' reset."""
    headers = {
        "Date": ANTHROPIC["Date"],
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2025-10-25T12:00:02+00:00",
    }
    assert reset_wait(headers, status=429) == (2.0, "anthropic-ratelimit-requests-reset")
    assert reset_wait({**headers, "garbage": "x"}, status=200) == (
        2.0,
        "anthropic-ratelimit-requests-reset",
    )
