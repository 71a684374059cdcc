"""Hostile bodies on error responses: judged by status and headers, never downloaded or decoded.

Every adapter meets a 50 MB body, a gzip bomb (200 KB on the wire, 200 MB decoded), deeply
nested JSON and invalid UTF-8, first on a 503 it retries, then on a 400 it hands back. It must
decide from the status and headers alone: the retry goes out, the server manages to write
only what the kernel buffers hold before the client hangs up, Python's heap grows by under
5 MB at its peak (tracemalloc, which sees every thread: client, event loop and server), and
the next request on the same client gets a correct, complete answer, so no connection went
back to the pool with unread bytes on it.

Each scenario runs twice on one client and is measured the second time, so that what a client
builds on first use (its pool, an SSL context) is not counted as growth.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import pytest
from forbear_testing import FaultServer, Reply, serve
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from forbear import Backoff, Jitter, Policy

from .drivers import Driver, Options, Session

MiB = 2**20
#: What the caller reads of a hostile body handed back to it.
READ_LIMIT = 64 * 1024
#: Most the heap may grow while one hostile request is handled.
MAX_GROWTH = 5 * MiB
#: A client that hung up early lets the server write only what the kernel buffers hold.
MAX_WRITTEN = 50 * MiB // 4
POLICY = Policy(max_attempts=3, backoff=Backoff(initial=0.01, max=0.02, jitter=Jitter.NONE))
PATH = "/hostile-body"

#: Each hostile body, as a `Reply` of a given status.
BODIES: dict[str, Callable[[int], Reply]] = {
    "50MB": functools.partial(Reply, body_size=50 * MiB),
    "gzip-bomb": functools.partial(Reply, gzip_bomb=200 * MiB),
    "nested-json": functools.partial(
        Reply,
        headers={"Content-Type": "application/json"},
        body=b"[" * 30_000 + b"]" * 30_000,
    ),
    "invalid-utf8": functools.partial(
        Reply,
        headers={"Content-Type": "application/problem+json; charset=utf-8"},
        body=b'{"detail": "\xff\xfe\xc3\x28\xa0\xa1' * 5000,
    ),
}


class CountingServer(FaultServer):
    """The fault server, counting the body bytes it gets written to each path's sockets."""

    def __init__(self) -> None:
        self._count_lock = threading.Lock()
        self._written: dict[str, int] = {}
        super().__init__()

    def _build(self) -> ASGIApp:
        app = super()._build()

        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            path = str(scope.get("path"))

            async def counted(message: Message) -> None:
                await send(message)  # returns once the transport has taken the bytes
                if message["type"] == "http.response.body":
                    with self._count_lock:
                        self._written[path] = self._written.get(path, 0) + len(
                            message.get("body", b"")
                        )

            await app(scope, receive, counted)

        return counting

    def written(self, path: str) -> int:
        """Body bytes written to ``path``'s connections since the last `reset`."""
        with self._count_lock:
            return self._written.get(path, 0)

    def _clear(self) -> None:
        super()._clear()
        with self._count_lock:
            self._written.clear()


@pytest.fixture(scope="module")
def counting_server() -> Iterator[CountingServer]:
    """A `CountingServer` for this module, reset before each test."""
    with serve(CountingServer()) as server:
        yield server


@pytest.fixture
def server(counting_server: CountingServer) -> CountingServer:
    """The counting server, reset for this test."""
    counting_server.reset()
    return counting_server


class Peak:
    """The heap's peak growth over a block, in bytes."""

    growth = 0


@contextlib.contextmanager
def heap_growth() -> Iterator[Peak]:
    """Measure the traced heap's peak above its level at the start of the block."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    peak = Peak()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        yield peak
        peak.growth = tracemalloc.get_traced_memory()[1] - start
    finally:
        if not was_tracing:
            tracemalloc.stop()


def assert_next_request_clean(session: Session, server: CountingServer) -> None:
    """The next request on the same client gets exactly the server's answer."""
    answer = session.send("GET", server.url + "/next")
    assert (answer.status, answer.body) == (200, b"ok")
    assert answer.headers["content-length"] == "2"


@pytest.mark.parametrize("body", BODIES, ids=str)
def test_hostile_body_on_retried_error(driver: Driver, body: str, server: CountingServer) -> None:
    """A 503 with a hostile body is retried unread: small heap, nothing downloaded, clean pool."""
    hostile = BODIES[body](503)
    with driver.open(Options(POLICY, timeout=10.0)) as session:
        for round_number in (1, 2):
            server.script(PATH, [hostile])
            with heap_growth() as peak:
                answer = session.send("GET", server.url + PATH)
            assert (answer.status, answer.body) == (200, b"ok"), answer.error
            assert len(server.arrivals(PATH)) == 2 * round_number
        assert peak.growth < MAX_GROWTH
        assert server.written(PATH) < 2 * MAX_WRITTEN
        assert_next_request_clean(session, server)
    assert len(server.arrivals("/next")) == 1


# A caller that stops reading an httpx async stream part-way leaves httpcore's async generators
# unexhausted; trio warns when they are collected. That is the caller's reading, not forbear's.
@pytest.mark.filterwarnings("ignore:Async generator:ResourceWarning")
@pytest.mark.parametrize("body", BODIES, ids=str)
def test_hostile_body_on_returned_error(driver: Driver, body: str, server: CountingServer) -> None:
    """A 400 with a hostile body is handed back unread; 64 KiB of it is read; the pool is clean."""
    hostile = BODIES[body](400)
    with driver.open(Options(POLICY, timeout=10.0)) as session:
        for round_number in (1, 2):
            server.script(PATH, [hostile])
            with heap_growth() as peak:
                answer = session.send("GET", server.url + PATH, read_limit=READ_LIMIT)
            assert answer.status == 400, answer.error
            assert 0 < len(answer.body) <= READ_LIMIT
            assert len(server.arrivals(PATH)) == round_number
        assert peak.growth < MAX_GROWTH
        assert server.written(PATH) < 2 * MAX_WRITTEN
        assert_next_request_clean(session, server)
    assert len(server.arrivals("/next")) == 1
