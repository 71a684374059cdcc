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

    python -m tests.reliability.soak --fleet [--workers 4] [--seconds 180] [--rate 5]

The fleet scope: the soak starts its own redis-server (127.0.0.1, a free port, no persistence)
and ``--workers`` processes, each driving every adapter that takes a gate and a budget (all but
backoff) at ``--rate`` requests a second, all through one `forbear_redis.Fleet` (its gate and
budget). The server counts every send of every process, so lost and off-plan requests are
counted as above. Reported besides: RSS and open file descriptors of each worker at the start
and end of the steady phase, the Redis commands run during it (per request, per send, per
worker-second, by command, counted by Redis itself) and the round trips the workers made, and
whether the fleet scope was still up at the end.
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
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forbear_testing import DEFAULT_REPLY, FaultServer, Reply, serve

from forbear import Backoff, Policy

from .drivers import DRIVERS, SCOPED_DRIVERS, Driver, Options, scoped

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

    def __init__(
        self,
        driver: Driver,
        url: str,
        rate: float,
        lock: threading.Lock,
        *,
        prefix: str = "",
        scope: Any = None,
    ) -> None:
        self.driver = driver
        #: The driver's name, after ``prefix`` (a fleet worker's): the ids of its requests.
        self.name = prefix + driver.name
        self.url = url
        self.rate = rate
        self.submitted = 0
        self.tally = Tally(self.name)
        self._lock = lock
        options = Options(POLICY, idempotency_keys=driver.adds_headers, timeout=TIMEOUT)
        if scope is None:
            self.session = driver.open(options)
        else:  # the fleet's gate and budget instead of the process's
            self.session = scoped(driver, options, gate=scope.gate, budget=scope.budget)
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
        soak_id = f"{self.name}-{number}"
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
        check_sends(self.tally, self.submitted, attempts)

    def _baseline(self, number: int) -> None:
        # The same work for the server as the forbear request's (the plan is drawn, then empty).
        url = f"{self.url}{PATH}/{BASELINE}{self.name}-{number}"
        answer = self.baseline.send("GET", url)
        with self._lock:
            if answer.status == 200:
                self.tally.bare.append(answer.elapsed)

    def close(self) -> None:
        """Close the worker pool and both clients."""
        self.pool.shutdown()
        self.session.close()
        self.baseline.close()


def check_sends(tally: Tally, submitted: int, attempts: dict[str, int]) -> None:
    """Count ``tally``'s requests whose sends, as the server saw them, differ from their plan."""
    for number in range(submitted):
        soak_id = f"{tally.name}-{number}"
        faults = plan(soak_id)
        if attempts.get(soak_id, 0) != len(faults) + 1:
            tally.off_plan += 1
            tally.failures.append(f"{soak_id}: {attempts.get(soak_id, 0)} sends for plan {faults}")


def _settled(
    futures: set[concurrent.futures.Future[None]],
) -> set[concurrent.futures.Future[None]]:
    """The futures still running; those done are checked (an exception is raised here)."""
    for future in [future for future in futures if future.done()]:
        future.result()
    return {future for future in futures if not future.done()}


def steady(
    runners: list[Runner], began: float, seconds: float, *, stagger: tuple[int, int] = (0, 1)
) -> dict[str, Any]:
    """Run ``runners`` from ``began`` (monotonic) for ``seconds``; this process's figures.

    ``stagger`` (this worker's index, the number of workers) spreads the schedules of several
    processes over each period as the runners of one are spread.
    """
    worker, workers = stagger
    objects_start, rss_start, fds_start = _live_objects(), _rss(), _open_fds()
    slots = len(runners) * workers
    threads = [
        threading.Thread(
            target=runner.run,
            args=(began, began + seconds, (index * workers + worker) / slots),
            name=runner.name,
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
    return {
        "took": took,
        "rss": (rss_start, _rss()),
        "fds": (fds_start, _open_fds()),
        "objects": (objects_start, _live_objects()),
        "rss_samples": rss_samples,
    }


def soak(seconds: float, rate: float) -> dict[str, Any]:
    """Run the soak; the figures as a dict."""
    lock = threading.Lock()
    with soak_server() as (url, stats):
        runners = [Runner(driver, url, rate, lock) for driver in DRIVERS]
        try:
            for runner in runners:
                runner.warm()
            phase = steady(runners, time.monotonic(), seconds)
        finally:
            for runner in runners:
                runner.close()
    for runner in runners:
        runner.check_sends(stats["attempts"])
    return _figures(
        [runner.tally for runner in runners],
        seconds,
        phase["took"],
        rate,
        stats["answers"],
        stats["faults"],
        phase["rss"],
        phase["fds"],
        phase["objects"],
        phase["rss_samples"],
    )


def _figures(
    tallies: list[Tally],
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
    for tally in tallies:
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
        "sent": sum(tally.sent for tally in tallies),
        "lost": sum(tally.lost for tally in tallies),
        "off_plan": sum(tally.off_plan for tally in tallies),
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


# -- the fleet scope: worker processes sharing one forbear_redis.Fleet -------------------------

#: Fleet mode: this many worker processes, each driving every adapter that takes a gate and a
#: budget (all but backoff) at this rate per adapter, through one `forbear_redis.Fleet`.
FLEET_WORKERS = 4
FLEET_RATE = 5.0
NAMESPACE = "soak"


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server of the soak's own on 127.0.0.1 at a free port (no persistence); its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("the fleet soak needs redis-server: apt-get install redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="forbear-soak-redis-") as directory:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", directory]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _tally_dict(tally: Tally, submitted: int) -> dict[str, Any]:
    return {
        "name": tally.name,
        "submitted": submitted,
        "sent": tally.sent,
        "lost": tally.lost,
        "retried": tally.retried,
        "forbear": list(tally.forbear),
        "bare": list(tally.bare),
        "failures": tally.failures,
    }


def _tally_from(data: dict[str, Any]) -> Tally:
    tally = Tally(data["name"], data["sent"], data["lost"], 0, data["retried"])
    tally.forbear.extend(data["forbear"])
    tally.bare.extend(data["bare"])
    tally.failures.extend(data["failures"])
    return tally


def fleet_worker(
    index: int, workers: int, url: str, redis_url: str, seconds: float, rate: float
) -> None:
    """One worker process of the fleet soak.

    Opens every scoped driver on the fleet's gate and budget, warms them, prints ``ready``,
    waits for ``go <monotonic start>`` on stdin (the clock is the machine's, shared by every
    process), runs the steady phase and prints its figures as one JSON line.
    """
    from forbear_redis import Fleet

    lock = threading.Lock()
    fleet = Fleet(redis_url, namespace=NAMESPACE)
    prefix = f"w{index}-"
    runners = [
        Runner(driver, url, rate, lock, prefix=prefix, scope=fleet) for driver in SCOPED_DRIVERS
    ]
    try:
        for runner in runners:
            runner.warm()
        print("ready", flush=True)
        began = float(sys.stdin.readline().split()[1])
        calls_start = fleet.store.calls
        phase = steady(runners, began, seconds, stagger=(index, workers))
        calls = fleet.store.calls - calls_start
        up = fleet.store.up
    finally:
        for runner in runners:
            runner.close()
        fleet.close()
    report = {
        "worker": index,
        "pid": os.getpid(),
        "store_calls": calls,
        "store_up": up,
        "tallies": [_tally_dict(runner.tally, runner.submitted) for runner in runners],
        **phase,
    }
    print(json.dumps(report), flush=True)


def _summed_samples(samples: list[list[list[int]]]) -> list[tuple[int, int]]:
    """The workers' RSS samples added up, at the seconds every worker sampled."""
    totals: dict[int, list[int]] = {}
    for worker in samples:
        for second, size in worker:
            totals.setdefault(second, []).append(size)
    return [(s, sum(v)) for s, v in sorted(totals.items()) if len(v) == len(samples)]


def _command_calls(client: Any) -> dict[str, int]:
    """Calls per Redis command so far (the soak's own INFO left out)."""
    stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}
    calls.pop("info", None)
    return calls


def fleet_soak(seconds: float, rate: float, workers: int) -> dict[str, Any]:
    """The soak across ``workers`` processes sharing one `forbear_redis.Fleet`; its figures."""
    import redis

    root = Path(__file__).resolve().parents[2]
    with redis_server() as redis_url, soak_server() as (url, stats):
        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        command = [sys.executable, "-m", "tests.reliability.soak", "--workers", str(workers)]
        command += ["--url", url, "--redis", redis_url, "--seconds", str(seconds)]
        command += ["--rate", str(rate)]
        children = [
            subprocess.Popen(
                [*command, "--fleet-worker", str(index)],
                cwd=root,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for index in range(workers)
        ]
        try:
            for child in children:
                assert child.stdout is not None
                line = child.stdout.readline().strip()
                if line != "ready":
                    raise RuntimeError(f"a fleet worker did not start: {line!r}")
            memory_start = int(client.info("memory")["used_memory"])
            before = _command_calls(client)
            began = time.monotonic() + 0.5
            for child in children:
                assert child.stdin is not None
                child.stdin.write(f"go {began}\n")
                child.stdin.flush()
            reports = []
            for child in children:
                assert child.stdout is not None
                reports.append(json.loads(child.stdout.readline()))
            took = time.monotonic() - began
            after = _command_calls(client)
            memory_end = int(client.info("memory")["used_memory"])
            client.close()
        finally:
            for child in children:
                if child.stdin is not None:
                    child.stdin.close()
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(10)
                if child.stdout is not None:
                    child.stdout.close()
    tallies = []
    for report in reports:
        for data in report["tallies"]:
            tally = _tally_from(data)
            check_sends(tally, data["submitted"], stats["attempts"])
            tallies.append(tally)
    figures = _figures(
        tallies,
        seconds,
        took,
        rate,
        stats["answers"],
        stats["faults"],
        (sum(r["rss"][0] for r in reports), sum(r["rss"][1] for r in reports)),
        (sum(r["fds"][0] for r in reports), sum(r["fds"][1] for r in reports)),
        (sum(r["objects"][0] for r in reports), sum(r["objects"][1] for r in reports)),
        _summed_samples([r["rss_samples"] for r in reports]),
    )
    commands = {
        name: after.get(name, 0) - before.get(name, 0)
        for name in after
        if after.get(name, 0) != before.get(name, 0)
    }
    redis_calls = sum(commands.values())
    sent = figures["sent"]
    figures["fleet"] = {
        "workers": workers,
        "redis_calls": redis_calls,
        "redis_calls_by_command": dict(sorted(commands.items(), key=lambda kv: -kv[1])),
        "store_calls": sum(r["store_calls"] for r in reports),
        "redis_calls_per_request": round(redis_calls / sent, 4) if sent else 0.0,
        "round_trips_per_request": round(sum(r["store_calls"] for r in reports) / sent, 4)
        if sent
        else 0.0,
        "redis_calls_per_worker_second": round(redis_calls / workers / took, 1),
        "redis_calls_per_send": round(redis_calls / stats["answers"], 4)
        if stats["answers"]
        else 0.0,
        "redis_memory_kb": (round(memory_start / 1024), round(memory_end / 1024)),
        "store_up_at_end": all(r["store_up"] for r in reports),
        "per_worker": [
            {
                "worker": r["worker"],
                "rss_mb": [round(r["rss"][0] / 2**20, 1), round(r["rss"][1] / 2**20, 1)],
                "fds": list(r["fds"]),
                "objects": list(r["objects"]),
                "store_calls": r["store_calls"],
                "sent": sum(t["sent"] for t in r["tallies"]),
            }
            for r in reports
        ],
    }
    return figures


def _report(figures: dict[str, Any]) -> str:
    fleet = figures.get("fleet")
    lines = [
        f"soak: {figures['took']} s, {figures['rate_per_adapter']} req/s per adapter "
        + (
            f"({len(figures['adapters']) // fleet['workers']} adapters in each of "
            f"{fleet['workers']} processes sharing one Fleet), each beside a bare twin"
            if fleet
            else f"({len(figures['adapters'])} adapters), each beside a bare twin"
        ),
        f"requests sent {figures['sent']}, lost {figures['lost']}, "
        f"sends off plan {figures['off_plan']}, "
        f"fault share of answers {figures['fault_share']:.1%}",
        f"RSS {figures['rss_start_mb']} MB -> {figures['rss_end_mb']} MB, "
        f"open fds {figures['fds_start']} -> {figures['fds_end']}, "
        f"live objects {figures['objects_start']} -> {figures['objects_end']}",
        "RSS over time (s: MB): "
        + ", ".join(f"{second}: {size}" for second, size in figures["rss_mb_over_time"]),
    ]
    if fleet:
        lines += [
            f"Redis commands {fleet['redis_calls']}: {fleet['redis_calls_per_request']} per "
            f"request, {fleet['redis_calls_per_send']} per send, "
            f"{fleet['redis_calls_per_worker_second']} per worker-second ("
            + ", ".join(f"{k} {v}" for k, v in fleet["redis_calls_by_command"].items())
            + ")",
            f"Redis round trips (pipelines and scripts, counted by the workers) "
            f"{fleet['store_calls']}: {fleet['round_trips_per_request']} per request",
            f"Redis memory {fleet['redis_memory_kb'][0]} KB -> {fleet['redis_memory_kb'][1]} KB, "
            f"fleet scope up at the end: {fleet['store_up_at_end']}",
        ]
        for row in fleet["per_worker"]:
            lines.append(
                f"  worker {row['worker']}: sent {row['sent']}, RSS {row['rss_mb'][0]} -> "
                f"{row['rss_mb'][1]} MB, fds {row['fds'][0]} -> {row['fds'][1]}, "
                f"objects {row['objects'][0]} -> {row['objects'][1]}, "
                f"Redis calls {row['store_calls']}"
            )
    lines += [
        "",
        "latency of GETs that succeeded at once (ms): with forbear / bare twin / added",
        f"{'adapter':<18} {'sent':>6} {'lost':>5} {'p50':>22} {'p99':>24}",
    ]
    rows = dict(figures["adapters"])
    rows["all"] = {"sent": figures["sent"], "lost": figures["lost"], **figures["all"]}
    for name, row in rows.items():
        p50 = f"{row['p50_ms']:.2f} / {row['p50_bare_ms']:.2f} / {row['p50_added_ms']:+.2f}"
        p99 = f"{row['p99_ms']:.2f} / {row['p99_bare_ms']:.2f} / {row['p99_added_ms']:+.2f}"
        lines.append(f"{name:<18} {row['sent']:>6} {row['lost']:>5} {p50:>22} {p99:>24}")
    for name, row in figures["adapters"].items():
        for failure in row["failures"]:
            lines.append(f"  {name}: {failure}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the soak from the command line; 1 when a request was lost or sent off plan."""
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=180.0, help="steady phase (default 180)")
    parser.add_argument(
        "--rate",
        type=float,
        help=f"requests/s per adapter (default 10; with --fleet {FLEET_RATE:g} per process)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    parser.add_argument(
        "--fleet",
        action="store_true",
        help="the fleet scope: worker processes sharing one forbear_redis.Fleet on a "
        "redis-server the soak starts (every adapter but backoff)",
    )
    parser.add_argument(
        "--workers", type=int, default=FLEET_WORKERS, help=f"with --fleet (default {FLEET_WORKERS})"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fleet-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_soak()
        return 0
    if args.fleet_worker is not None:
        fleet_worker(args.fleet_worker, args.workers, args.url, args.redis, args.seconds, args.rate)
        return 0
    if args.fleet:
        figures = fleet_soak(args.seconds, args.rate or FLEET_RATE, args.workers)
    else:
        figures = soak(args.seconds, args.rate or 10.0)
    print(_report(figures))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 1 if figures["lost"] or figures["off_plan"] else 0


if __name__ == "__main__":
    sys.exit(main())
