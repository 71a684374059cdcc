"""Each call is its own logical request, across threads and tasks; no client library is needed.

The imports are checked in a fresh interpreter, since this test process has every client
library loaded already.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import requests
from backoff_harness import FAST

import forbear_backoff
from forbear_testing import FaultServer, Reply

PATHS = [f"/p{n}" for n in range(6)]


def test_concurrent_threads_keep_separate_histories(fault_server: FaultServer) -> None:
    """Six threads share one decorated function; each call makes its own two attempts."""
    for path in PATHS:
        fault_server.script(path, [Reply(503), Reply(200)])

    @forbear_backoff.on_response(policy=FAST, gate=None, budget=None)
    def fetch(session: requests.Session, path: str) -> requests.Response:
        return session.get(fault_server.url + path)

    with requests.Session() as session, ThreadPoolExecutor(len(PATHS)) as pool:
        statuses = list(pool.map(lambda path: fetch(session, path).status_code, PATHS))
    assert statuses == [200] * len(PATHS)
    for path in PATHS:
        assert [a.status for a in fault_server.arrivals(path)] == [503, 200]


def test_concurrent_tasks_keep_separate_histories(fault_server: FaultServer) -> None:
    """Six asyncio tasks share one decorated coroutine; each gives up on its own count."""
    for n, path in enumerate(PATHS):
        fault_server.script(path, [Reply(503)] * n + [Reply(200)])

    async def main() -> list[int]:
        async with httpx.AsyncClient() as client:

            @forbear_backoff.on_exception(
                httpx.HTTPStatusError, policy=FAST, gate=None, budget=None
            )
            async def fetch(path: str) -> int:
                response = await client.get(fault_server.url + path)
                return response.raise_for_status().status_code

            results = await asyncio.gather(*(fetch(p) for p in PATHS), return_exceptions=True)
            return [r if isinstance(r, int) else r.response.status_code for r in results]

    # Five attempts in all: a path with five 503s before its 200 never sees the 200.
    assert asyncio.run(main()) == [200] * 5 + [503]
    for n, path in enumerate(PATHS):
        assert len(fault_server.arrivals(path)) == min(n + 1, 5)


def test_nested_decorated_calls_keep_separate_histories(fault_server: FaultServer) -> None:
    """A decorated function calling another: each judges only its own attempts."""
    fault_server.script("/inner", [Reply(503), Reply(200)])
    fault_server.script("/outer", [Reply(503), Reply(200)])
    outer_decisions: list[Any] = []

    with httpx.Client() as client:

        @forbear_backoff.on_response(policy=FAST, gate=None, budget=None)
        def inner() -> httpx.Response:
            return client.get(fault_server.url + "/inner")

        @forbear_backoff.on_response(policy=FAST, on_backoff=lambda d: outer_decisions.append(d))
        def outer() -> httpx.Response:
            assert inner().status_code == 200
            return client.get(fault_server.url + "/outer")

        assert outer().status_code == 200
    assert [a.status for a in fault_server.arrivals("/inner")] == [503, 200, 200]
    assert [a.status for a in fault_server.arrivals("/outer")] == [503, 200]
    assert [(d["decision"].attempt, d["decision"].status) for d in outer_decisions] == [(1, 503)]


def test_no_client_library_is_imported() -> None:
    """forbear_backoff imports none of httpx, requests, aiohttp, and reads what is loaded."""
    code = textwrap.dedent(
        """
        import sys
        import forbear.flow
        import forbear_backoff
        loaded = {"httpx", "requests", "aiohttp"} & set(sys.modules)
        assert not loaded, loaded
        assert forbear.flow.read_attempt(object()) is None
        assert forbear_backoff.Pieces().giveup(ValueError()) is True

        import requests  # only requests, now: its objects are recognised
        response = requests.Response()
        response.status_code = 503
        response.headers["Retry-After"] = "3"
        attempt = forbear.flow.read_attempt(response)
        assert (attempt.outcome.status, attempt.response) == (503, response), attempt
        assert forbear_backoff.Pieces(method="GET").retryable(response) is True
        assert forbear_backoff.Pieces().retryable(response) is False  # unknown method
        assert not {"httpx", "aiohttp"} & set(sys.modules)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr
