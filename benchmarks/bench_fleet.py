"""A fleet crawl: N worker processes sharing one rate-limited origin, with and without Redis.

Each worker is its own process with one ``aiohttp.ClientSession`` mounting
``forbear_aiohttp.RetryMiddleware`` and ``concurrency`` tasks; the URLs are split evenly among
the workers, and every worker starts at one instant (a barrier). The origin is nginx's
``limit_req`` (`benchmarks._servers.Nginx`: ``rate`` r/s, ``burst``, 429 + ``Retry-After: 1``).
Three runs, in this order:

1. ``uncoordinated``: each worker has its own gate and budget (the process scope).
2. ``fleet cold``: ``forbear_redis.Fleet(url, namespace=...)`` in every worker, a fresh
   namespace (nothing learned yet).
3. ``fleet warm``: the same namespace again, new processes: they start at the rate the cold
   run learned.

Two more against an origin that announces its limit (``--only announced,...``): the
`forbear.testing` fault server in its own process (`benchmarks._servers.FaultProcess`), a token
bucket of ``--announced-rate`` r/s and ``burst`` sending IETF ``RateLimit`` /
``RateLimit-Policy`` fields on every answer, crawled by

4. ``announced, uncoordinated``: a process gate per worker, each pacing at the announced rate
   (together N times it);
5. ``announced, fleet``: a fresh namespace; the fleet paces at the announced rate as soon as a
   worker has read it.

Reported per run: wall time from the barrier to the last answer over the ideal (URLs / rate),
the 429s nginx answered (its access log), requests lost (a final answer other than 200, or an
exception), and Redis round trips per request.

Run ``python -m benchmarks.bench_fleet`` from the repository root (needs nginx and
redis-server; ``--workers``, ``--concurrency``, ``--urls``, ``--rate``, ``--burst``,
``--announced-rate``, ``--only``, ``--json PATH``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks._servers import (
    HOST,
    FaultProcess,
    Nginx,
    _stop,
    _wait_listening,
    free_port,
    nginx_binary,
)

#: A run that takes longer than this many times the ideal is cut short (its rest is lost).
TIME_LIMIT_FACTOR = 8.0


@dataclass
class Result:
    """One run of the fleet crawl."""

    name: str
    wall: float
    ideal: float
    ok: int
    lost: int
    rate_limited: int
    redis_calls: int
    #: The fleet's pacing rate for the origin when the run ended (0: not paced).
    final_rate: float
    errors: dict[str, int]

    @property
    def ratio(self) -> float:
        return self.wall / self.ideal


# -- a worker process --------------------------------------------------------------------------


def _worker(
    urls: list[str],
    concurrency: int,
    redis_url: str | None,
    namespace: str,
    barrier: Any,
    out: Any,
    time_limit: float,
) -> None:
    """Crawl ``urls`` with ``concurrency`` tasks; put ``(finish time, counts, calls)`` on out."""
    import aiohttp
    from forbear_aiohttp import RetryMiddleware

    from forbear import HostGate, RetryBudget

    fleet = None
    if redis_url is not None:
        from forbear_redis import Fleet

        fleet = Fleet(redis_url, namespace=namespace)
        middleware = RetryMiddleware(gate=fleet.gate, budget=fleet.budget)  # type: ignore[arg-type]
    else:
        middleware = RetryMiddleware(gate=HostGate(), budget=RetryBudget())

    async def crawl() -> tuple[float, Counter[str]]:
        counts: Counter[str] = Counter()
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(middlewares=[middleware], connector=connector) as session:
            pending = iter(urls)

            async def task() -> None:
                for url in pending:
                    try:
                        async with session.get(url) as response:
                            await response.read()
                            counts[str(response.status)] += 1
                    except Exception as exc:
                        counts[type(exc).__name__] += 1

            barrier.wait()
            tasks = [asyncio.ensure_future(task()) for _ in range(concurrency)]
            _, left = await asyncio.wait(tasks, timeout=time_limit)
            for unfinished in left:
                unfinished.cancel()
            counts["unfinished"] += len(urls) - sum(counts.values())
        return time.monotonic(), counts

    finish, counts = asyncio.run(crawl())
    calls = 0
    rates: list[float] = []
    if fleet is not None:
        calls = fleet.store.calls
        rates = list(fleet.gate.rates().values())
        fleet.close()
    out.put((finish, dict(counts), calls, rates))


def _run(
    name: str,
    origin: str,
    statuses: Callable[[], Counter[int]],
    *,
    workers: int,
    concurrency: int,
    urls: int,
    rate: float,
    redis_url: str | None,
    namespace: str,
) -> Result:
    """One crawl of ``origin + "/limited/..."``; ``statuses`` counts what it answered there."""
    context = multiprocessing.get_context("spawn")
    slug = name.replace(" ", "-").replace(",", "")
    every = [f"{origin}/limited/{slug}/{n}" for n in range(urls)]
    shares = [every[index::workers] for index in range(workers)]
    ideal = urls / rate
    barrier = context.Barrier(workers + 1)
    out = context.Queue()
    time.sleep(1.0)  # Retry-After is 1 s: a quiet second refills the bucket
    before = statuses()
    processes = [
        context.Process(
            target=_worker,
            args=(
                share,
                concurrency,
                redis_url,
                namespace,
                barrier,
                out,
                ideal * TIME_LIMIT_FACTOR,
            ),
        )
        for share in shares
    ]
    for process in processes:
        process.start()
    barrier.wait(timeout=60)
    start = time.monotonic()
    reports = [out.get(timeout=ideal * TIME_LIMIT_FACTOR + 60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    wall = max(report[0] for report in reports) - start
    counts: Counter[str] = Counter()
    for report in reports:
        counts.update(report[1])
    time.sleep(0.2)  # nginx writes each log line at once; let the last ones land
    answered = statuses()
    answered.subtract(before)
    ok = counts.get("200", 0)
    return Result(
        name=name,
        wall=wall,
        ideal=ideal,
        ok=ok,
        lost=urls - ok,
        rate_limited=answered.get(429, 0),
        redis_calls=sum(report[2] for report in reports),
        final_rate=max((rate for report in reports for rate in report[3]), default=0.0),
        errors={key: n for key, n in counts.items() if key != "200" and n},
    )


# -- redis-server ------------------------------------------------------------------------------


class RedisServer:
    """redis-server on 127.0.0.1 at a free port, without persistence, in a temporary dir."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self._dir = tempfile.mkdtemp(prefix="forbear-bench-redis-")
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> RedisServer:
        port = free_port()
        command = [self.binary, "--port", str(port), "--bind", HOST, "--save", ""]
        command += ["--appendonly", "no", "--dir", self._dir]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_listening(port, self._process, "redis-server")
        self.url = f"redis://{HOST}:{port}/0"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            _stop(self._process)
        shutil.rmtree(self._dir, ignore_errors=True)


# -- main --------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    lines = [
        "| run | wall / ideal | 429s | lost | Redis calls / request |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        per_request = result.redis_calls / max(result.ok + result.lost, 1)
        lines.append(
            f"| {result.name} | {result.ratio:.2f}x ({result.wall:.2f} s) | "
            f"{result.rate_limited} | {result.lost} | {per_request:.2f} |"
        )
    return "\n".join(lines)


def _print(result: Result) -> None:
    print(
        f"{result.name}: {result.ratio:.2f}x ideal ({result.wall:.2f} s), "
        f"{result.rate_limited} 429s, {result.lost} lost, "
        f"final rate {result.final_rate:.0f}/s {result.errors or ''}",
        flush=True,
    )


def _announced(args: argparse.Namespace, redis_url: str, shape: dict[str, Any]) -> list[Result]:
    """The two runs against a token bucket announcing its limit in IETF fields."""
    rate = args.announced_rate
    shape = shape | {"rate": rate, "urls": min(shape["urls"], round(rate * 5))}
    results = []
    with FaultProcess() as faults:
        print(
            f"forbear.testing bucket {rate:g} r/s burst {args.burst}, announced (IETF); "
            f"{shape['urls']} URLs",
            flush=True,
        )
        runs = [
            ("announced, uncoordinated", None),
            ("announced, fleet", redis_url),
        ]
        for name, url in runs:
            faults.command("reset")
            faults.command("limit", path="/limited/", rate=rate, burst=args.burst, announce="ietf")
            result = _run(
                name,
                faults.url,
                lambda: faults.statuses("/limited/"),
                redis_url=url,
                namespace=f"bench-{uuid.uuid4().hex[:8]}",
                **shape,
            )
            results.append(result)
            _print(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=400.0)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--announced-rate", type=float, default=200.0)
    parser.add_argument("--only", default="uncoordinated,cold,warm")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    binary = nginx_binary()
    redis_binary = shutil.which("redis-server")
    if binary is None or redis_binary is None:
        print("bench_fleet needs nginx and redis-server: apt-get install nginx-light redis-server")
        return 2
    wanted = set(args.only.split(","))
    results: list[Result] = []
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    shape = {
        "workers": args.workers,
        "concurrency": args.concurrency,
        "urls": args.urls,
        "rate": args.rate,
    }
    with Nginx(binary, rate=args.rate, burst=args.burst) as nginx, RedisServer(redis_binary) as rs:
        print(
            f"nginx {nginx.version} limit_req {args.rate:g} r/s burst {args.burst}; "
            f"{args.workers} workers x {args.concurrency} concurrent, {args.urls} URLs",
            flush=True,
        )
        runs = [
            ("uncoordinated", "uncoordinated", None),
            ("cold", "fleet cold", rs.url),
            ("warm", "fleet warm", rs.url),
        ]
        for key, name, url in runs:
            if key not in wanted:
                continue
            result = _run(
                name, nginx.url, nginx.statuses, redis_url=url, namespace=namespace, **shape
            )
            results.append(result)
            _print(result)
        if "announced" in wanted:
            results += _announced(args, rs.url, shape)
    print()
    print(table(results))
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump([asdict(result) | {"ratio": result.ratio} for result in results], handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
