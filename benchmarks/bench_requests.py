"""What `forbear_requests.RetryAdapter` costs on the happy path, measured two ways.

1. In-process: microseconds added per request over a zero-latency inner send: an
   ``HTTPAdapter`` whose ``send`` returns a prepared 200 ``requests.Response`` at once, alone
   and as `RetryAdapter`'s ``inner``; the adapter's ``send`` is called directly so the
   session's own cost does not drown the figure.
   Median over many interleaved rounds.
2. End-to-end: requests per second through a ``requests.Session`` with and without
   `RetryAdapter` mounted, against a minimal uvicorn app on 127.0.0.1 (in a subprocess, so the
   server does not share the client's GIL): sequential, and 32 threads sharing one session.
   Bare and forbear sessions alternate in short rounds (which goes first alternates too); the
   table gives medians and the spread (interquartile range) of the per-round slowdown, and,
   for the sequential runs, the client process's CPU time per request (which a busy machine
   shakes far less than wall-clock rates).

Only forbear is measured here, against the bare adapter. The comparison with urllib3's own
``Retry``, and the in-process figure over a real ``HTTPAdapter`` (its urllib3 pool answering
without a socket, where forbear's code meets caches the inner's work has filled: about twice
this script's figure), are `benchmarks.scenarios.happy`'s.

Run ``python -m benchmarks.bench_requests`` from the repository root (``--smoke`` for a tiny
run that only checks numbers come out, ``--json PATH`` to keep the figures).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from forbear_requests import RetryAdapter
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict

from benchmarks import _loopback
from benchmarks._loopback import Row
from benchmarks._loopback import iqr as _iqr
from benchmarks._loopback import ok_server as _server
from benchmarks.peers import forbear_scope

_URL_PATH = "/items?page=1"
_THREADS = 32


# -- 1. in-process ---------------------------------------------------------------------------


class _StubSend(HTTPAdapter):
    """``HTTPAdapter`` whose ``send`` answers 200 at once, without a socket."""

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = 200
        response.headers = CaseInsensitiveDict({"Content-Length": "2"})
        response._content = b"ok"
        response.request = request
        response.url = request.url or ""
        return response


def _micro(adapter: BaseAdapter, n: int) -> float:
    request = requests.Request("GET", "http://127.0.0.1:8000" + _URL_PATH).prepare()
    send = adapter.send
    start = time.perf_counter()
    for _ in range(n):
        send(request)
    return (time.perf_counter() - start) / n * 1e6


def micro(rounds: int, n: int) -> list[Row]:
    """Microseconds per request, the stubbed send alone vs wrapped in `RetryAdapter`."""
    stub, wrapped = _StubSend(), RetryAdapter(_StubSend(), **forbear_scope())
    _micro(stub, n)
    _micro(wrapped, n)  # warm up
    bare, ours, added = [], [], []
    for _ in range(rounds):
        b, f = _micro(stub, n), _micro(wrapped, n)
        bare.append(b)
        ours.append(f)
        added.append(f - b)
    stub.close()
    wrapped.close()
    return [
        Row(
            "in-process adapter.send",
            statistics.median(bare),
            statistics.median(ours),
            "µs/req",
            statistics.median(added),
            _iqr(added),
        )
    ]


# -- 2. end-to-end ---------------------------------------------------------------------------


def _session(adapter: BaseAdapter) -> requests.Session:
    session = requests.Session()
    session.mount("http://", adapter)
    return session


#: Client CPU microseconds per request of each sequential round, by session (see `_cpu_row`).
_CPU: dict[int, list[float]] = {}


def _sequential_rate(session: requests.Session, url: str, n: int) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        session.get(url)
    _CPU.setdefault(id(session), []).append((time.process_time() - cpu) / n * 1e6)
    return n / (time.perf_counter() - start)


def _threaded_rate(session: requests.Session, url: str, n: int, pool: ThreadPoolExecutor) -> float:
    per_worker = max(n // _THREADS, 1)

    def worker() -> None:
        for _ in range(per_worker):
            session.get(url)

    start = time.perf_counter()
    for future in [pool.submit(worker) for _ in range(_THREADS)]:
        future.result()
    return per_worker * _THREADS / (time.perf_counter() - start)


def _compare(name: str, bare: list[float], ours: list[float]) -> Row:
    slower = [(b - f) / b * 100.0 for b, f in zip(bare, ours, strict=True)]
    return Row(
        name,
        statistics.median(bare),
        statistics.median(ours),
        "req/s",
        statistics.median(slower),
        _iqr(slower),
    )


def _cpu_row(bare: requests.Session, ours: requests.Session, rounds: int) -> Row:
    """Client CPU per sequential request: what forbear adds, less shaken by a busy machine."""
    bare_cpu, our_cpu = _CPU[id(bare)][-rounds:], _CPU[id(ours)][-rounds:]
    added = [f - b for b, f in zip(bare_cpu, our_cpu, strict=True)]
    return Row(
        "loopback, sequential, client CPU",
        statistics.median(bare_cpu),
        statistics.median(our_cpu),
        "µs/req",
        statistics.median(added),
        _iqr(added),
    )


def end_to_end(rounds: int, n: int) -> list[Row]:
    """Requests per second, bare session vs `RetryAdapter`, alternating round by round."""
    rows = []
    with (
        _server() as base,
        _session(HTTPAdapter(pool_maxsize=_THREADS)) as bare,
        _session(RetryAdapter(HTTPAdapter(pool_maxsize=_THREADS), **forbear_scope())) as ours,
        ThreadPoolExecutor(_THREADS) as pool,
    ):
        url = base + _URL_PATH

        def sequential(session: requests.Session) -> float:
            return _sequential_rate(session, url, n)

        def threaded(session: requests.Session) -> float:
            return _threaded_rate(session, url, n, pool)

        runs: list[tuple[str, Callable[[requests.Session], float]]] = [
            ("loopback, sequential", sequential),
            (f"loopback, {_THREADS} threads", threaded),
        ]
        for name, run in runs:
            run(bare)
            run(ours)  # warm up: connections made, code paths hot
            bare_rates, our_rates = [], []
            for index in range(rounds):
                # Short rounds in alternating order, so drift and neighbours hit both alike.
                if index % 2:
                    our_rates.append(run(ours))
                    bare_rates.append(run(bare))
                else:
                    bare_rates.append(run(bare))
                    our_rates.append(run(ours))
            rows.append(_compare(name, bare_rates, our_rates))
            if run is sequential:
                rows.append(_cpu_row(bare, ours, rounds))
    return rows


# -- report ----------------------------------------------------------------------------------


def measure(smoke: bool) -> list[Row]:
    """Every row: tiny sizes when ``smoke``."""
    if smoke:
        return micro(rounds=3, n=500) + end_to_end(rounds=2, n=64)
    return micro(rounds=31, n=20_000) + end_to_end(rounds=41, n=512)


def main(argv: list[str] | None = None) -> None:
    _loopback.main(__doc__.splitlines()[0] if __doc__ else None, argv, measure)


if __name__ == "__main__":
    main()
