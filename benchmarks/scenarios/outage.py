"""Scenario 3, the outage: an origin answering 503 to everything (no Retry-After).

N logical requests at concurrency C to `forbear.testing`'s fault server with
``always(path, Reply(503))``. Every library uses the same fast backoff (10 ms doubling, capped
at 80 ms; `peers.FAST_INITIAL`, `peers.FAST_MAX`) so the scenario takes seconds, not minutes:
what is measured is how many sends the outage receives, not how long the waits are. forbear's
adapters run twice: with a `RetryBudget` of their own, fresh for every run (``Setup(budget=True)``
gives ``budget=RetryBudget()``, see `peers.forbear_scope`: never the process's shared budget,
which an earlier candidate would have spent), and without one (``budget=None``).

Reported per candidate, medians over interleaved repeats: arrivals at the server per logical
request (retry amplification: 1.0 means no retries at all, 5.0 every request tried five
times), the median time a logical request took to give up, and the wall time.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from benchmarks._drive import drive
from benchmarks._servers import FaultProcess
from benchmarks.peers import Candidate, Setup

PATH = "/outage"


@dataclass
class OutageRow:
    """One candidate (and budget setting) over the repeats."""

    name: str
    library: str
    bare: bool
    budget: bool | None
    amplification: list[float] = field(default_factory=list)
    give_up: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    final_503: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "library": self.library,
            "bare": self.bare,
            "budget": self.budget,
            "arrivals_per_request": statistics.median(self.amplification),
            "arrivals_per_request_range": [min(self.amplification), max(self.amplification)],
            "give_up_s": statistics.median(self.give_up),
            "wall_s": statistics.median(self.walls),
            "final_503": statistics.median(self.final_503),
        }


def _variants(candidates: Sequence[Candidate]) -> list[tuple[str, Candidate, Setup, bool | None]]:
    variants: list[tuple[str, Candidate, Setup, bool | None]] = []
    for candidate in candidates:
        if candidate.library == "forbear":
            variants.append((f"{candidate.name}, budget", candidate, Setup(fast=True), True))
            variants.append(
                (f"{candidate.name}, no budget", candidate, Setup(fast=True, budget=False), False)
            )
        else:
            variants.append((candidate.name, candidate, Setup(fast=True), None))
    return variants


def run(
    candidates: Sequence[Candidate],
    faults: FaultProcess,
    *,
    requests: int,
    concurrency: int,
    repeats: int,
    time_limit: float,
    log: Any = print,
) -> dict[str, Any]:
    """Send ``requests`` logical requests to an always-503 origin through every candidate."""
    variants = _variants(candidates)
    rows = {name: OutageRow(name, c.library, c.bare, budget) for name, c, _, budget in variants}
    targets = [f"{faults.url}{PATH}?item={index}" for index in range(requests)]
    for repeat in range(repeats):
        shift = repeat % len(variants)
        for name, candidate, setup, _ in [*variants[shift:], *variants[:shift]]:
            faults.command("reset")
            faults.command("always", path=PATH, status=503)
            result = drive(
                candidate,
                replace(setup),
                targets,
                concurrency=concurrency,
                time_limit=time_limit,
            )
            arrivals = sum(faults.statuses(PATH).values())
            row = rows[name]
            row.amplification.append(arrivals / requests)
            row.give_up.append(result.median_latency)
            row.walls.append(result.wall)
            row.final_503.append(result.count(503))
            log(
                f"  outage {repeat + 1}/{repeats} {name:44} {arrivals / requests:5.2f} "
                f"arrivals/request, gives up in {result.median_latency * 1000:6.1f} ms, "
                f"wall {result.wall:5.2f} s"
            )
    return {
        "requests": requests,
        "concurrency": concurrency,
        "repeats": repeats,
        "backoff": "10 ms doubling, capped at 80 ms, for every library",
        "rows": [row.summary() for row in rows.values()],
    }
