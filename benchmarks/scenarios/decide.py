"""Scenario 5, the decision core: what one `forbear.decide` call costs.

`benchmarks.bench_decide`'s cases and timing, reused as they are: the median of ``repeat``
runs of ``number`` decisions per case, clocks and RNG injected.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from benchmarks import bench_decide


def run(*, number: int, repeat: int, log: Any = print) -> dict[str, Any]:
    """Every `bench_decide.CASES` case, measured."""
    results = [
        bench_decide.measure(case, number=number, repeat=repeat) for case in bench_decide.CASES
    ]
    for result in results:
        if not (math.isfinite(result.us_per_decision) and result.us_per_decision > 0):
            raise AssertionError(f"{result.name}: no usable figure")
        log(f"  decide {result.name:28} {result.us_per_decision:6.3f} µs/decision")
    return {
        "number": number,
        "repeat": repeat,
        "target_us": bench_decide.TARGET_US,
        "cases": [asdict(result) for result in results],
    }
