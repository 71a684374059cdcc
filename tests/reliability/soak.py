"""The soak: every adapter at once, at a steady rate, against a server failing 10 % of answers.

    python -m tests.reliability.soak [--seconds 180] [--rate 10] [--json PATH]

Each driver of `tests.reliability.drivers` (httpx sync, httpx on asyncio and on trio,
requests, aiohttp, backoff) sends ``--rate`` requests a second for ``--seconds`` seconds, from
a pool of worker threads, so a request waiting out a back-off never holds up the schedule.
Every fifth request is a POST carrying an ``Idempotency-Key`` (forbear's, or the caller's for
backoff), so it may be retried like the GETs. Beside each, the same client without forbear
sends a GET on the same schedule to a path that never fails: the baseline for the layer's cost.

The server (a child process, so that it neither competes with the clients for the GIL nor
counts in their memory) decides each request's faults from the id in its path, so the client
knows them too: one request in ten meets a fault on its first attempt (a 500, 502, 503, 504,
a 503 naming a zero wait, or an answer too slow for the client's read timeout), one in ten of
those a second one. Nobody meets three, so every request must end 200 ``ok`` within the
policy's five attempts, after exactly the sends its plan calls for.

Reported: requests sent and lost (not ending 200 ``ok``: must be 0), sends that differ from the
plan (must be 0), the share of answers that were faults, RSS, open file descriptors and
objects tracked by the garbage collector at the start and end of the steady phase (RSS every
ten seconds too), and, per adapter, p50 and p99 of the latency of GETs that succeeded on
their first attempt, with and without forbear, and their difference (the latency the retry
layer adds). The exit status is 1 when a request was lost or sent off plan.
"""

from __future__ import annotations

import argparse
import array
import concurrent.futures
import contextlib
import gc
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forbear_testing import DEFAULT_REPLY, FaultServer, Reply, serve

from forbear import Backoff, Policy

from .drivers import DRIVERS, Driver, Options

#: Share of requests whose first attempt meets a fault, and of those, a second one.
FIRST_FAULT = 0.10
SECOND_FAULT = 0.10
#: The faults, each with its weight.
FAULTS: dict[str, float] = {
    "500": 0.15,
    "502": 0.15,
    "503": 0.30,
    "504": 0.15,
    "503-wait-0": 0.15,
    "slow": 0.10,
}
#: Each attempt's connect and read timeout; a "slow" fault answers after twice as long.
TIMEOUT = 1.0
POLICY = Policy(max_attempts=5, backoff=Backoff(initial=0.05, max=0.5))
WORKERS = 16
#: How often RSS is sampled during the steady phase, in seconds.
RSS_EVERY = 10.0
SEED = 20_240_611
PATH = "/soak"
#: Ids of the baseline's requests start with this: the server answers them 200 at once.
BASELINE = "baseline-"


def plan(soak_id: str) -> tuple[str, ...]:
    """The faults the server answers this request's attempts with, in order; then 200.

    A baseline id seeds its generator too, so that the server does the same work for it.
    """
    rng = random.Random(f"{SEED}:{soak_id}")
    if soak_id.startswith(BASELINE):
        return ()
    names, weights = list(FAULTS), list(FAULTS.values())
    faults: list[str] = []
    if rng.random() < FIRST_FAULT:
        faults.append(rng.choices(names, weights)[0])
        if rng.random() < SECOND_FAULT:
            faults.append(rng.choices(names, weights)[0])
    return tuple(faults)


def _reply(fault: str) -> Reply:
    if fault == "slow":
        return Reply(200, body=b"late", delay=2 * TIMEOUT)
    if fault == "503-wait-0":
        return Reply(503, retry_after=0)
    return Reply(int(fault))


class SoakServer(FaultServer):
    """The fault server, answering ``/soak/<id>`` by the id's `plan` and counting its attempts."""

    def __init__(self) -> None:
        self._soak_lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self.answers = 0
        self.faults = 0
        super().__init__()

    def _choose(self, path: str, authorization: str | None) -> Reply:
        soak_id = path.removeprefix(PATH + "/")
        if soak_id == path:
            return super()._choose(path, authorization)
        with self._soak_lock:
            attempt = self._attempts.get(soak_id, 0)
            self._attempts[soak_id] = attempt + 1
            faults = plan(soak_id)
            if not soak_id.startswith(BASELINE):
                self.answers += 1
                self.faults += attempt < len(faults)
        return _reply(faults[attempt]) if attempt < len(faults) else DEFAULT_REPLY

    def stats(self) -> dict[str, Any]:
        """Answers to forbear's requests, faults among them, and the attempts per id."""
        with self._soak_lock:
            return {"answers": self.answers, "faults": self.faults, "attempts": self._attempts}


def serve_soak() -> None:
    """The server process: print the URL, serve until stdin closes, then print the stats."""
    with serve(SoakServer()) as server:
        print(server.url, flush=True)
        closed = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
        while not closed.wait(1.0):
            # The recorder keeps every arrival; the soak counts its own, so drop them.
            server.reset()
        print(json.dumps(server.stats()), flush=True)


@contextlib.contextmanager
def soak_server() -> Iterator[tuple[str, dict[str, Any]]]:
    """Run `serve_soak` in a child process; its URL, and its stats once the block ends."""
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.soak", "--serve"],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    stats: dict[str, Any] = {}
    try:
        url = child.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the soak server did not start: {url!r}")
        yield url, stats
    finally:
        child.stdin.close()
        output = child.stdout.read()
        child.wait(30)
        child.stdout.close()
    stats.update(json.loads(output))


@dataclass
class Tally:
    """What one driver's requests came to."""

    name: str
    sent: int = 0
    lost: int = 0
    off_plan: int = 0
    retried: int = 0
    #: Latencies (seconds) of GETs succeeding at once through forbear, and of the baseline's.
    forbear: array.array[float] = field(default_factory=lambda: array.array("d"))
    bare: array.array[float] = field(default_factory=lambda: array.array("d"))
    failures: list[str] = field(default_factory=list)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _live_objects() -> int:
    """Objects the garbage collector tracks: flat in a steady state, rising with a leak."""
    gc.collect()
    return len(gc.get_objects())


def _percentile(values: array.array[float], q: float) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


class Runner:
    """Sends one driver's requests on schedule, through forbear and through the baseline."""

    def __init__(self, driver: Driver, url: str, rate: float, lock: threading.Lock) -> None:
        self.driver = driver
        self.url = url
        self.rate = rate
        self.submitted = 0
        self.tally = Tally(driver.name)
        self._lock = lock
        adds = driver.adds_headers
        self.session = driver.open(Options(POLICY, idempotency_keys=adds, timeout=TIMEOUT))
        self.baseline = driver.open(Options(POLICY, timeout=TIMEOUT, bare=True))
        self.pool = concurrent.futures.ThreadPoolExecutor(WORKERS, f"soak-{driver.name}")

    def warm(self) -> None:
        """One request each way, so that lazily built pools exist before the start figures."""
        for session in (self.session, self.baseline):
            answer = session.send("GET", f"{self.url}/warm")
            assert answer.status == 200, answer

    def run(self, began: float, until: float, slot: float) -> None:
        """Submit requests on schedule from ``began`` to ``until`` (monotonic); wait for them.

        ``slot`` (a fraction of the period) staggers the drivers, and each request from its
        baseline twin by half a slot, so that requests overlap only when retries make them.
        """
        pending: set[concurrent.futures.Future[None]] = set()
        half_slot = 0.5 / len(DRIVERS) / self.rate
        for number in itertools.count():
            due = began + (number + slot) / self.rate
            if due >= until:
                break
            # Which goes first alternates, so neither gets the quieter moment every time.
            first, second = (self._one, self._baseline)[:: 1 if number % 2 else -1]
            time.sleep(max(due - time.monotonic(), 0.0))
            pending.add(self.pool.submit(first, number))
            time.sleep(max(due + half_slot - time.monotonic(), 0.0))
            pending.add(self.pool.submit(second, number))
            self.submitted += 1
            pending = _settled(pending)
        concurrent.futures.wait(pending)
        _settled(pending)

    def _one(self, number: int) -> None:
        soak_id = f"{self.driver.name}-{number}"
        method = "POST" if number % 5 == 0 else "GET"
        headers = {}
        if method == "POST" and not self.driver.adds_headers:
            headers["Idempotency-Key"] = soak_id
        body = b'{"n": %d}' % number if method == "POST" else None
        url = f"{self.url}{PATH}/{soak_id}"
        answer = self.session.send(method, url, headers=headers, body=body)
        faults = plan(soak_id)
        with self._lock:
            tally = self.tally
            tally.sent += 1
            if (answer.status, answer.body) != (200, b"ok"):
                tally.lost += 1
                tally.failures.append(f"{soak_id} {method}: {answer.status} {answer.error!r}")
            if faults:
                tally.retried += 1
            elif answer.status == 200 and method == "GET":  # the baseline sends GETs
                tally.forbear.append(answer.elapsed)

    def check_sends(self, attempts: dict[str, int]) -> None:
        """Count the requests whose sends, as the server saw them, differ from their plan."""
        for number in range(self.submitted):
            soak_id = f"{self.driver.name}-{number}"
            faults = plan(soak_id)
            if attempts.get(soak_id, 0) != len(faults) + 1:
                self.tally.off_plan += 1
                self.tally.failures.append(
                    f"{soak_id}: {attempts.get(soak_id, 0)} sends for plan {faults}"
                )

    def _baseline(self, number: int) -> None:
        # The same work for the server as the forbear request's (the plan is drawn, then empty).
        url = f"{self.url}{PATH}/{BASELINE}{self.driver.name}-{number}"
        answer = self.baseline.send("GET", url)
        with self._lock:
            if answer.status == 200:
                self.tally.bare.append(answer.elapsed)

    def close(self) -> None:
        """Close the worker pool and both clients."""
        self.pool.shutdown()
        self.session.close()
        self.baseline.close()


def _settled(
    futures: set[concurrent.futures.Future[None]],
) -> set[concurrent.futures.Future[None]]:
    """The futures still running; those done are checked (an exception is raised here)."""
    for future in [future for future in futures if future.done()]:
        future.result()
    return {future for future in futures if not future.done()}


def soak(seconds: float, rate: float) -> dict[str, Any]:
    """Run the soak; the figures as a dict."""
    lock = threading.Lock()
    with soak_server() as (url, stats):
        runners = [Runner(driver, url, rate, lock) for driver in DRIVERS]
        try:
            for runner in runners:
                runner.warm()
            objects_start, rss_start, fds_start = _live_objects(), _rss(), _open_fds()
            began = time.monotonic()
            threads = [
                threading.Thread(
                    target=runner.run,
                    args=(began, began + seconds, index / len(runners)),
                    name=runner.tally.name,
                )
                for index, runner in enumerate(runners)
            ]
            for thread in threads:
                thread.start()
            rss_samples = []
            sample_at = began + RSS_EVERY
            for thread in threads:
                while thread.is_alive():
                    thread.join(max(sample_at - time.monotonic(), 0.0))
                    if time.monotonic() >= sample_at:
                        rss_samples.append((round(sample_at - began), _rss()))
                        sample_at += RSS_EVERY
            took = time.monotonic() - began
            objects_end, rss_end, fds_end = _live_objects(), _rss(), _open_fds()
        finally:
            for runner in runners:
                runner.close()
    for runner in runners:
        runner.check_sends(stats["attempts"])
    return _figures(
        runners,
        seconds,
        took,
        rate,
        stats["answers"],
        stats["faults"],
        (rss_start, rss_end),
        (fds_start, fds_end),
        (objects_start, objects_end),
        rss_samples,
    )


def _figures(
    runners: list[Runner],
    seconds: float,
    took: float,
    rate: float,
    answers: int,
    faults: int,
    rss: tuple[int, int],
    fds: tuple[int, int],
    objects: tuple[int, int],
    rss_samples: list[tuple[int, int]],
) -> dict[str, Any]:
    adapters = {}
    pooled_forbear: array.array[float] = array.array("d")
    pooled_bare: array.array[float] = array.array("d")
    for runner in runners:
        tally = runner.tally
        pooled_forbear.extend(tally.forbear)
        pooled_bare.extend(tally.bare)
        adapters[tally.name] = {
            "sent": tally.sent,
            "lost": tally.lost,
            "off_plan": tally.off_plan,
            "retried": tally.retried,
            **_latencies(tally.forbear, tally.bare),
            "failures": tally.failures[:10],
        }
    return {
        "seconds": seconds,
        "took": round(took, 1),
        "rate_per_adapter": rate,
        "sent": sum(r.tally.sent for r in runners),
        "lost": sum(r.tally.lost for r in runners),
        "off_plan": sum(r.tally.off_plan for r in runners),
        "answers": answers,
        "fault_share": round(faults / answers, 4) if answers else 0.0,
        "rss_start_mb": round(rss[0] / 2**20, 1),
        "rss_end_mb": round(rss[1] / 2**20, 1),
        "fds_start": fds[0],
        "fds_end": fds[1],
        "objects_start": objects[0],
        "objects_end": objects[1],
        "rss_mb_over_time": [(second, round(size / 2**20, 1)) for second, size in rss_samples],
        "all": _latencies(pooled_forbear, pooled_bare),
        "adapters": adapters,
    }


def _latencies(forbear: array.array[float], bare: array.array[float]) -> dict[str, float]:
    figures = {}
    for q in (0.50, 0.99):
        with_layer, without = _percentile(forbear, q), _percentile(bare, q)
        name = f"p{round(q * 100)}"
        figures[f"{name}_ms"] = round(with_layer * 1000, 3)
        figures[f"{name}_bare_ms"] = round(without * 1000, 3)
        figures[f"{name}_added_ms"] = round((with_layer - without) * 1000, 3)
    return figures


def _report(figures: dict[str, Any]) -> str:
    lines = [
        f"soak: {figures['took']} s, {figures['rate_per_adapter']} req/s per adapter "
        f"({len(figures['adapters'])} adapters), each beside a bare twin",
        f"requests sent {figures['sent']}, lost {figures['lost']}, "
        f"sends off plan {figures['off_plan']}, "
        f"fault share of answers {figures['fault_share']:.1%}",
        f"RSS {figures['rss_start_mb']} MB -> {figures['rss_end_mb']} MB, "
        f"open fds {figures['fds_start']} -> {figures['fds_end']}, "
        f"live objects {figures['objects_start']} -> {figures['objects_end']}",
        "RSS over time (s: MB): "
        + ", ".join(f"{second}: {size}" for second, size in figures["rss_mb_over_time"]),
        "",
        "latency of GETs that succeeded at once (ms): with forbear / bare twin / added",
        f"{'adapter':<14} {'sent':>6} {'lost':>5} {'p50':>22} {'p99':>24}",
    ]
    rows = dict(figures["adapters"])
    rows["all"] = {"sent": figures["sent"], "lost": figures["lost"], **figures["all"]}
    for name, row in rows.items():
        p50 = f"{row['p50_ms']:.2f} / {row['p50_bare_ms']:.2f} / {row['p50_added_ms']:+.2f}"
        p99 = f"{row['p99_ms']:.2f} / {row['p99_bare_ms']:.2f} / {row['p99_added_ms']:+.2f}"
        lines.append(f"{name:<14} {row['sent']:>6} {row['lost']:>5} {p50:>22} {p99:>24}")
    for name, row in figures["adapters"].items():
        for failure in row["failures"]:
            lines.append(f"  {name}: {failure}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the soak from the command line; 1 when a request was lost or sent off plan."""
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=180.0, help="steady phase (default 180)")
    parser.add_argument("--rate", type=float, default=10.0, help="requests/s per adapter")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_soak()
        return 0
    figures = soak(args.seconds, args.rate)
    print(_report(figures))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 1 if figures["lost"] or figures["off_plan"] else 0


if __name__ == "__main__":
    sys.exit(main())
