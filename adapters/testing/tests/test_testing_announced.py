"""A token bucket announcing its state in every rate-limit dialect."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from forbear_testing import FaultServer, TokenBucket
from forbear_testing._limits import bucket_headers

WALL = 1_800_000_000.25


def _at(tokens: float, rate: float = 100.0, burst: int = 5) -> tuple[TokenBucket, float]:
    """A bucket and a ``now`` at which it holds exactly ``tokens``."""
    bucket = TokenBucket(rate, burst, now=0.0)
    for _ in range(bucket.capacity):
        assert bucket.take(0.0) == 0.0
    now = tokens / rate
    assert bucket.level(now) == pytest.approx(tokens)
    return bucket, now


def test_level_reads_without_taking() -> None:
    """`level` is the tokens held, refilled to ``now``, and takes none."""
    bucket, now = _at(2.5)
    assert bucket.level(now) == pytest.approx(2.5)
    assert bucket.level(now) == pytest.approx(2.5)
    assert bucket.level(100.0) == bucket.capacity


def test_ietf_announces_the_rate_and_the_whole_tokens() -> None:
    """``RateLimit-Policy`` is the rate as a quota per whole-second window; ``RateLimit`` the
    whole tokens left and, once none is, the seconds until one (rounded up)."""
    bucket, now = _at(3.4)
    assert bucket_headers("ietf", bucket, now=now, wall=WALL) == (
        ("RateLimit-Policy", '"bucket";q=100;w=1'),
        ("RateLimit", '"bucket";r=3;t=0'),
    )
    bucket, now = _at(0.5)
    assert dict(bucket_headers("ietf", bucket, now=now, wall=WALL))["RateLimit"] == (
        '"bucket";r=0;t=1'
    )
    slow = TokenBucket(0.5, 2, now=0.0)  # 3 tokens refill in 6 s
    assert dict(bucket_headers("ietf", slow, now=0.0, wall=WALL))["RateLimit-Policy"] == (
        '"bucket";q=3;w=6'
    )


def test_draft_x_and_openai_count_down_to_a_full_bucket() -> None:
    """The older drafts, GitHub and OpenAI: the capacity, the whole tokens left, and when the
    bucket is full again (delta seconds, Unix seconds rounded up, a duration)."""
    bucket, now = _at(3.4)  # full (6) again in 26 ms
    assert bucket_headers("draft", bucket, now=now, wall=WALL) == (
        ("RateLimit-Limit", "6"),
        ("RateLimit-Remaining", "3"),
        ("RateLimit-Reset", "0.026"),
    )
    assert bucket_headers("x", bucket, now=now, wall=WALL) == (
        ("X-RateLimit-Limit", "6"),
        ("X-RateLimit-Remaining", "3"),
        ("X-RateLimit-Reset", str(int(WALL) + 1)),
    )
    assert bucket_headers("openai", bucket, now=now, wall=WALL) == (
        ("x-ratelimit-limit-requests", "6"),
        ("x-ratelimit-remaining-requests", "3"),
        ("x-ratelimit-reset-requests", "26ms"),
    )
    slow = TokenBucket(0.01, 0, now=0.0)
    slow.take(0.0)  # full again in 100 s
    assert dict(bucket_headers("openai", slow, now=0.0, wall=WALL))[
        "x-ratelimit-reset-requests"
    ] == ("1m40s")
    full = TokenBucket(100.0, 5, now=0.0)
    assert dict(bucket_headers("draft", full, now=0.0, wall=WALL))["RateLimit-Reset"] == "0"
    assert dict(bucket_headers("openai", full, now=0.0, wall=WALL))[
        "x-ratelimit-reset-requests"
    ] == ("0ms")


def test_an_unknown_dialect_is_refused(fault_server: FaultServer) -> None:
    """``announce`` takes one of `DIALECTS`."""
    with pytest.raises(ValueError, match="dialect"):
        fault_server.limit("/p", rate=1.0, announce="carrier-pigeon")
    with pytest.raises(ValueError, match="dialect"):
        bucket_headers("carrier-pigeon", TokenBucket(1.0, now=0.0), now=0.0, wall=WALL)


@pytest.fixture
def client(fault_server: FaultServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fault_server.url, timeout=5.0) as client:
        yield client


@pytest.mark.parametrize("per", [None, "api_key"])
def test_every_answer_carries_the_state(
    fault_server: FaultServer, client: httpx.Client, per: str | None
) -> None:
    """200s and 429s alike announce the bucket as it is once the request was counted; a 429
    keeps its Retry-After."""
    fault_server.limit("/limited", rate=0.5, burst=2, announce="draft", per=per)
    answers = [client.get("/limited") for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert all(r.headers["ratelimit-limit"] == "3" for r in answers)
    assert answers[0].text == "ok"
    assert answers[3].headers["retry-after"] == "2"
    assert 5.9 < float(answers[3].headers["ratelimit-reset"]) <= 6.0


def test_no_announcement_unless_asked(fault_server: FaultServer, client: httpx.Client) -> None:
    """A limit without ``announce`` sends no rate-limit header."""
    fault_server.limit("/limited", rate=0.5)
    answers = [client.get("/limited") for _ in range(2)]
    assert [r.status_code for r in answers] == [200, 429]
    assert not any("ratelimit" in name for r in answers for name in r.headers)
