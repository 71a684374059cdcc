"""A limit that drops under a small crawl, at every moment: the reliability suite's case
(``tests/reliability/test_reliability_limits.py``: 40 -> 10 r/s, burst 4, 8 workers) on the
virtual clock, so the moment of the drop is swept instead of left to the machine's timing.

Sends refused together by the drop wait out ``Retry-After: 1`` together; when they come back
and are refused again, the run of 429s goes on (and measures the server over its last half
second, each such step at most halving the pace) instead of counting as a fresh crossing after
a calm spell. Before that rule, a drop just after the pacer's own crossing cut the pace by 3 %
per wave: up to 26 429s after the drop and a request refused five times in a CI run; measured
now, 17 at most over the sweep (median 11).
"""

from __future__ import annotations

import pytest
from simulation import TokenBucket, crawl

from forbear import Policy

BEFORE, AFTER = 40.0, 10.0
WORKERS = 8


def drop_at(at: float, seed: int) -> tuple[int, int]:
    """(429s after a drop at ``at`` seconds, requests lost) for one crawl."""
    count = int(BEFORE * at + AFTER * 2.5)
    result = crawl(
        requests=count,
        concurrency=WORKERS,
        rate=BEFORE,
        burst=4,
        latency=0.003,
        limiter=TokenBucket(BEFORE, 4, [(at, AFTER)]),
        seed=seed,
        policy=Policy(),
    )
    assert result.server is not None
    return result.server.rejected_after(at), result.lost


@pytest.mark.parametrize("seed", [1, 2])
def test_a_drop_at_any_moment_costs_a_handful_of_429s(seed: int) -> None:
    """Drops from 0.5 s to 3.45 s into the crawl, every 50 ms: nothing lost, at most 20 429s
    after the drop (measured at most 17, median 11; 26 and 13 before)."""
    after = []
    for step in range(60):
        refused, lost = drop_at(0.5 + step * 0.05, seed)
        assert lost == 0, (step, refused)
        after.append(refused)
    assert max(after) <= 20, after
    assert sorted(after)[len(after) // 2] <= 12, after
