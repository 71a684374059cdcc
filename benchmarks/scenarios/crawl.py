"""Scenario 2, the rate-limited crawl: N URLs at concurrency C against a token-bucket limiter.

The limiter allows ``rate`` requests a second with a burst of ``burst`` and answers 429 with
``Retry-After: 1`` when empty: nginx's ``limit_req`` when nginx is installed, else
`forbear.testing`'s limiter. Each candidate crawls every URL once (one logical request each),
``repeats`` times, the candidates interleaved (the order rotates every repeat). Reported per
candidate, as medians over the repeats: wall time / ideal (ideal = N / rate), the 429s the
server sent per success, and the logical requests lost (final answer not 200, or an error).
A run still going after ``time_limit`` is cut off: the URLs it had not finished are reported
as not done (not as lost), and its wall time is the limit.

Each repeat first crawls the same URLs under ``/free/`` (the same server without the limit)
with a bare client of each kind (httpx async, aiohttp, requests threads): the client's own
ceiling at this concurrency, a floor under every wall / ideal figure of that kind.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks._drive import drive
from benchmarks._servers import Limiter
from benchmarks.peers import FLOORS, Candidate, Setup


@dataclass
class CrawlRow:
    """One candidate's figures over the repeats."""

    name: str
    library: str
    client: str
    bare: bool
    walls: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    rejections: list[int] = field(default_factory=list)
    per_success: list[float] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    unfinished: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "library": self.library,
            "client": self.client,
            "bare": self.bare,
            "wall_s": statistics.median(self.walls),
            "wall_over_ideal": statistics.median(self.ratios),
            "wall_over_ideal_range": [min(self.ratios), max(self.ratios)],
            "rejections_429": statistics.median(self.rejections),
            "rejections_per_success": statistics.median(self.per_success),
            "rejections_per_success_range": [min(self.per_success), max(self.per_success)],
            "lost": statistics.median(self.lost),
            "lost_max": max(self.lost),
            "unfinished_max": max(self.unfinished),
            "errors": self.errors,
            "runs": {
                "wall_s": self.walls,
                "rejections_429": self.rejections,
                "lost": self.lost,
            },
        }


def run(
    candidates: Sequence[Candidate],
    limiter: Limiter,
    *,
    urls: int,
    concurrency: int,
    repeats: int,
    time_limit: float,
    log: Any = print,
) -> dict[str, Any]:
    """Crawl ``urls`` URLs with every candidate, ``repeats`` times, interleaved."""
    ideal = urls / limiter.rate
    targets = [f"{limiter.url}/limited/items/{index}" for index in range(urls)]
    rows = {c.name: CrawlRow(c.name, c.library, c.client, c.bare) for c in candidates}
    kinds = [kind for kind in FLOORS if any(c.client == kind for c in candidates)]
    floors: dict[str, list[float]] = {kind: [] for kind in kinds}
    free = [f"{limiter.url}/free/items/{index}" for index in range(urls)]
    for repeat in range(repeats):
        for kind in kinds:
            result = drive(
                FLOORS[kind], Setup(), free, concurrency=concurrency, time_limit=time_limit
            )
            floors[kind].append(result.wall / ideal)
            log(
                f"  crawl {repeat + 1}/{repeats} floor: {FLOORS[kind].name:22} unlimited "
                f"{result.wall:6.2f} s ({result.wall / ideal:.2f}x ideal)"
            )
        shift = repeat % len(candidates)
        for candidate in [*candidates[shift:], *candidates[:shift]]:
            before = limiter.fresh()
            result = drive(
                candidate, Setup(), targets, concurrency=concurrency, time_limit=time_limit
            )
            statuses = limiter.statuses_since(before)
            successes = result.count(200)
            row = rows[candidate.name]
            row.walls.append(result.wall)
            row.ratios.append(result.wall / ideal)
            row.rejections.append(statuses[429])
            row.per_success.append(statuses[429] / max(successes, 1))
            row.lost.append(len(result.statuses) - successes)
            row.unfinished.append(result.unfinished)
            for error, count in result.errors.items():
                row.errors[error] = row.errors.get(error, 0) + count
            log(
                f"  crawl {repeat + 1}/{repeats} {candidate.name:34} {result.wall:6.2f} s "
                f"({result.wall / ideal:.2f}x ideal), 429s {statuses[429]:5}, "
                f"lost {len(result.statuses) - successes}"
                + (f", cut off with {result.unfinished} not done" if result.unfinished else "")
            )
    return {
        "urls": urls,
        "concurrency": concurrency,
        "rate": limiter.rate,
        "burst": limiter.burst,
        "server": limiter.server,
        "ideal_s": ideal,
        "repeats": repeats,
        "floors": {
            kind: {
                "name": FLOORS[kind].name,
                "wall_over_ideal": statistics.median(values),
                "runs": values,
            }
            for kind, values in floors.items()
        },
        "rows": [row.summary() for row in rows.values()],
    }
