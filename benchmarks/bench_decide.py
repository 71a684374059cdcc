"""What one call to `forbear.decide` costs, for the outcomes a client meets most.

Each case times ``decide(policy, state, outcome, now=..., wall=..., rng=...)`` with
`timeit`, ``--repeat`` runs of ``--number`` calls, and reports the median run in microseconds
per decision (and decisions per second). Clocks and the RNG are injected, as adapters' drivers
may do, so only the decision itself is measured.

Cases: a 2xx; a 503 judged by backoff (no headers, and with six everyday plain-dict headers);
a 429 with ``Retry-After: 2``; a 429 with an IMF-fixdate ``Retry-After``. The target is under
2 µs per decision for the 2xx and backoff cases on a current CPython.

Run ``python -m benchmarks.bench_decide`` from the repository root; ``--smoke`` runs a tiny
size in well under a second and checks only that numbers came out; ``--json PATH`` writes the
figures.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import sys
import timeit
from dataclasses import asdict, dataclass

from forbear import Action, Outcome, Policy, RetryState, decide

#: Wall clock of every case: 2026-01-01T00:00:00Z.
WALL = 1_767_225_600.0
#: Monotonic time of every case.
NOW = 100.0
#: Target for the 2xx and backoff cases, in microseconds per decision.
TARGET_US = 2.0

_EVERYDAY_HEADERS = {
    "content-type": "application/json",
    "content-length": "74",
    "date": "Thu, 01 Jan 2026 00:00:00 GMT",
    "server": "nginx",
    "x-request-id": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class Case:
    """One outcome to judge, and the reason `decide` must give for it."""

    name: str
    outcome: Outcome
    reason: str
    #: Whether the under-2-µs target applies to this case.
    targeted: bool


CASES = (
    Case("2xx", Outcome.response(200, {}), "success", True),
    Case("503 backoff", Outcome.response(503, {}), "backoff", True),
    Case("503 backoff, 6 headers", Outcome.response(503, _EVERYDAY_HEADERS), "backoff", True),
    Case("429 Retry-After: 2", Outcome.response(429, {"Retry-After": "2"}), "retry-after", False),
    Case(
        "429 Retry-After: HTTP-date",
        Outcome.response(429, {"Retry-After": "Thu, 01 Jan 2026 00:00:30 GMT"}),
        "retry-after",
        False,
    ),
)


@dataclass
class Result:
    """The figures for one case."""

    name: str
    us_per_decision: float
    decisions_per_second: float
    #: Microseconds per decision of every run, in run order.
    runs: list[float]
    targeted: bool


def measure(case: Case, *, number: int, repeat: int) -> Result:
    """The median of ``repeat`` timeit runs of ``number`` decisions for ``case``."""
    policy = Policy()
    state = RetryState.start("GET", headers={}, now=NOW)
    rng = random.Random(0)
    decision = decide(policy, state, case.outcome, now=NOW, wall=WALL, rng=rng)
    if decision.reason != case.reason:
        raise AssertionError(f"{case.name}: expected {case.reason!r}, got {decision.reason!r}")
    if case.reason != "success" and decision.action is not Action.RETRY:
        raise AssertionError(f"{case.name}: expected a retry, got {decision.action}")
    timer = timeit.Timer(
        "decide(policy, state, outcome, now=now, wall=wall, rng=rng)",
        globals={
            "decide": decide,
            "policy": policy,
            "state": state,
            "outcome": case.outcome,
            "now": NOW,
            "wall": WALL,
            "rng": rng,
        },
    )
    runs = [total / number * 1e6 for total in timer.repeat(repeat=repeat, number=number)]
    median = statistics.median(runs)
    return Result(case.name, median, 1e6 / median, runs, case.targeted)


def table(results: list[Result]) -> str:
    """The results as a small aligned text table."""
    width = max(len(result.name) for result in results)
    lines = [f"{'case':<{width}}  {'µs/decision':>11}  {'decisions/s':>12}  target"]
    for result in results:
        target = ""
        if result.targeted:
            target = "ok" if result.us_per_decision < TARGET_US else f"over {TARGET_US:g} µs"
        lines.append(
            f"{result.name:<{width}}  {result.us_per_decision:>11.3f}  "
            f"{result.decisions_per_second:>12,.0f}  {target}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny run: only check numbers")
    parser.add_argument("--number", type=int, default=50_000, help="decisions per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs per case (median taken)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    number, repeat = (200, 3) if args.smoke else (args.number, args.repeat)

    results = [measure(case, number=number, repeat=repeat) for case in CASES]
    for result in results:
        if not (math.isfinite(result.us_per_decision) and result.us_per_decision > 0):
            raise AssertionError(f"{result.name}: no usable figure ({result.us_per_decision!r})")

    print(
        f"forbear.decide, {platform.python_implementation()} {platform.python_version()}, "
        f"median of {repeat} x {number:,} decisions"
    )
    print(table(results))
    if args.json:
        report = {
            "benchmark": "bench_decide",
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "machine": platform.machine(),
            "number": number,
            "repeat": repeat,
            "target_us": TARGET_US,
            "cases": [asdict(result) for result in results],
        }
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
            file.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
