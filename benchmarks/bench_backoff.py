"""What `forbear_backoff.on_response` costs on the happy path, measured two ways.

1. In-process: microseconds per call of a function returning a prebuilt ``httpx.Response(200)``
   at once, bare, under plain ``backoff.on_predicate(backoff.expo, ...)``, and under
   ``forbear_backoff.on_response()``; sync and async. Each overhead is over the bare function,
   so the plain backoff row shows how much of forbear's figure is backoff's own loop. Median
   over interleaved rounds.
2. End-to-end: requests per second of a function calling ``httpx.Client.get`` against a
   minimal uvicorn app on 127.0.0.1 (in a subprocess), bare vs decorated, alternating round by
   round; the table gives medians and the spread (interquartile range) of the slowdown.

Run ``python -m benchmarks.bench_backoff`` from the repository root (``--smoke`` for a tiny run
that only checks numbers come out, ``--json PATH`` to keep the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import backoff
import forbear_backoff
import httpx

from benchmarks._loopback import iqr as _iqr
from benchmarks._loopback import ok_server as _server
from benchmarks.peers import forbear_scope


@dataclass
class Row:
    """One line of the result table."""

    name: str
    bare: float
    wrapped: float
    unit: str
    #: The wrapper's extra cost: microseconds (in-process) or percent slower (end-to-end).
    overhead: float
    spread: tuple[float, float]


# -- 1. in-process ---------------------------------------------------------------------------


def _time_sync(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def _time_async(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    async def loop() -> float:
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        return (time.perf_counter() - start) / n * 1e6

    return asyncio.run(loop())


def _retry_5xx(response: httpx.Response) -> bool:
    return response.status_code >= 500


def micro(rounds: int, n: int) -> list[Row]:
    """Microseconds per call: bare, plain backoff, forbear's `on_response`."""
    request = httpx.Request("GET", "http://127.0.0.1:8000/items?page=1")
    response = httpx.Response(200, request=request)

    def bare() -> httpx.Response:
        return response

    async def abare() -> httpx.Response:
        return response

    rows = []
    for name, fn, timer in (
        ("in-process sync", bare, _time_sync),
        ("in-process async", abare, _time_async),
    ):
        plain = backoff.on_predicate(backoff.expo, _retry_5xx, jitter=None, logger=None)(fn)
        ours = forbear_backoff.on_response(logger=None, **forbear_scope())(fn)
        candidates: dict[str, Callable[..., Any]] = {"bare": fn, "plain": plain, "ours": ours}
        for candidate in candidates.values():
            timer(candidate, n // 10)  # warm up
        figures: dict[str, list[float]] = {key: [] for key in candidates}
        for _ in range(rounds):
            for key, candidate in candidates.items():
                figures[key].append(timer(candidate, n))
        for key, label in (("plain", "backoff.on_predicate"), ("ours", "forbear on_response")):
            added = [w - b for w, b in zip(figures[key], figures["bare"], strict=True)]
            rows.append(
                Row(
                    f"{name}, {label}",
                    statistics.median(figures["bare"]),
                    statistics.median(figures[key]),
                    "µs/req",
                    statistics.median(added),
                    _iqr(added),
                )
            )
    return rows


# -- 2. end-to-end ---------------------------------------------------------------------------


def _rate(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def end_to_end(rounds: int, n: int) -> list[Row]:
    """Requests per second of a sequential sync function, bare vs `on_response`."""
    with _server() as base, httpx.Client() as client:
        url = base + "/items?page=1"

        def bare() -> httpx.Response:
            return client.get(url)

        ours = forbear_backoff.on_response(logger=None, **forbear_scope())(bare)
        _rate(bare, n // 4)
        _rate(ours, n // 4)
        bare_rates: list[float] = []
        our_rates: list[float] = []
        for index in range(rounds):
            # Alternate who goes first, so a drift in machine load favours neither.
            for fn in (bare, ours) if index % 2 == 0 else (ours, bare):
                (bare_rates if fn is bare else our_rates).append(_rate(fn, n))
    slower = [(b - f) / b * 100.0 for b, f in zip(bare_rates, our_rates, strict=True)]
    return [
        Row(
            "loopback sync sequential, forbear on_response",
            statistics.median(bare_rates),
            statistics.median(our_rates),
            "req/s",
            statistics.median(slower),
            _iqr(slower),
        )
    ]


# -- report ----------------------------------------------------------------------------------


def _table(rows: list[Row]) -> str:
    lines = [
        f"{'benchmark':44} {'bare':>9} {'wrapped':>9} {'unit':>7}  overhead (IQR)",
        "-" * 96,
    ]
    for row in rows:
        low, high = row.spread
        if row.unit == "µs/req":
            overhead = f"+{row.overhead:.2f} µs/req ({low:.2f} .. {high:.2f})"
            values = f"{row.bare:9.2f} {row.wrapped:9.2f}"
        else:
            overhead = f"{row.overhead:+.1f} % slower ({low:+.1f} .. {high:+.1f})"
            values = f"{row.bare:9.0f} {row.wrapped:9.0f}"
        lines.append(f"{row.name:44} {values} {row.unit:>7}  {overhead}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; check numbers appear")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.smoke:
        rows = micro(rounds=3, n=500) + end_to_end(rounds=2, n=50)
    else:
        rows = micro(rounds=31, n=20_000) + end_to_end(rounds=40, n=300)
    print(_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([asdict(row) for row in rows], out, indent=2)
    assert rows and all(row.bare > 0 and row.wrapped > 0 for row in rows), "no figures measured"


if __name__ == "__main__":
    main()
