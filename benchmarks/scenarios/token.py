"""Scenario 4, token expiry: N concurrent requests carrying a bearer token that just expired.

`forbear.testing`'s fault server requires a valid bearer token under ``/api/`` and issues new
ones at ``/token`` (each new token expires the older ones). Each run issues a token, expires
it, then sends N concurrent GETs with it. forbear's transport adapters hold it in a
`forbear.TokenSource` whose exchange POSTs to ``/token``: the 401s that carried the same stale
token share one exchange, and each request is re-sent once. The peers have no re-exchange:
they send the token as a fixed header and get the 401 back (none of them retries a 401).

Reported per candidate, medians over interleaved repeats: successes out of N and token
exchanges performed (tokens the server issued, less the one the run started with).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks._drive import drive
from benchmarks._servers import FaultProcess
from benchmarks.peers import Candidate, Setup, TokenSetup

PATH = "/api/"


@dataclass
class TokenRow:
    """One candidate over the repeats."""

    name: str
    library: str
    reauth: bool
    successes: list[int] = field(default_factory=list)
    exchanges: list[int] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "library": self.library,
            "reauth": self.reauth,
            "successes": statistics.median(self.successes),
            "successes_min": min(self.successes),
            "exchanges": statistics.median(self.exchanges),
            "exchanges_max": max(self.exchanges),
            "arrivals": statistics.median(self.arrivals),
            "wall_s": statistics.median(self.walls),
        }


def run(
    candidates: Sequence[Candidate],
    faults: FaultProcess,
    *,
    requests: int,
    repeats: int,
    time_limit: float,
    log: Any = print,
) -> dict[str, Any]:
    """``requests`` concurrent requests with a stale token, through every candidate."""
    rows = {c.name: TokenRow(c.name, c.library, c.reauth) for c in candidates}
    targets = [f"{faults.url}{PATH}items/{index}" for index in range(requests)]
    for repeat in range(repeats):
        shift = repeat % len(candidates)
        for candidate in [*candidates[shift:], *candidates[:shift]]:
            faults.command("reset")
            faults.command("require_token", path=PATH)
            faults.command("token_endpoint", path="/token")
            stale = faults.command("issue_token")["token"]
            faults.command("expire_tokens")
            setup = Setup(
                token=TokenSetup(stale=stale, exchange_url=f"{faults.url}/token", origin=faults.url)
            )
            result = drive(candidate, setup, targets, concurrency=requests, time_limit=time_limit)
            row = rows[candidate.name]
            row.successes.append(result.count(200))
            row.exchanges.append(faults.tokens_issued() - 1)
            row.arrivals.append(sum(faults.statuses(PATH).values()))
            row.walls.append(result.wall)
            log(
                f"  token {repeat + 1}/{repeats} {candidate.name:34} "
                f"{result.count(200):4}/{requests} succeeded, "
                f"{row.exchanges[-1]} exchange(s), {row.arrivals[-1]} arrivals"
            )
    return {
        "requests": requests,
        "repeats": repeats,
        "rows": [row.summary() for row in rows.values()],
    }
