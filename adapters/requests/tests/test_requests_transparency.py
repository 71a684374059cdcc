"""With `RetryAdapter` mounted, requests does what it does without it, where forbear has no say.

Each case runs the same request through a plain ``requests.Session`` and through one with
`RetryAdapter` mounted, against the same real server, and compares what the caller sees.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from requests_raw_servers import SocketServer

from forbear import Backoff, Jitter, Policy
from forbear_requests import RetryAdapter
from forbear_testing import FaultServer, RawFaults, RawMode, Reply

EXACT = Backoff(initial=0.01, jitter=Jitter.NONE)


def plain() -> requests.Session:
    """A session as requests makes it."""
    return requests.Session()


def mounted() -> requests.Session:
    """A session with `RetryAdapter` mounted on ``http://``."""
    http = requests.Session()
    http.mount("http://", RetryAdapter(policy=Policy(backoff=EXACT)))
    return http


SESSIONS: dict[str, Callable[[], requests.Session]] = {"plain": plain, "forbear": mounted}


@pytest.mark.parametrize("make", SESSIONS.values(), ids=SESSIONS.keys())
def test_redirect_with_invalid_gzip_body_is_followed(
    make: Callable[[], requests.Session], fault_server: FaultServer
) -> None:
    """A 302 whose body is not valid gzip is followed, as plain requests follows it."""
    bad = {"Location": "/landing", "Content-Encoding": "gzip"}
    fault_server.script("/moved", [Reply(302, headers=bad, body=b"this is not gzip")])
    with make() as http:
        response = http.get(fault_server.url + "/moved")
    assert (response.status_code, response.text) == (200, "ok")
    assert [r.status_code for r in response.history] == [302]
    assert [a.status for a in fault_server.arrivals("/moved")] == [302]


@pytest.mark.parametrize("make", SESSIONS.values(), ids=SESSIONS.keys())
def test_redirect_with_body_cut_short_is_followed(
    make: Callable[[], requests.Session], cut_redirect: SocketServer
) -> None:
    """A 302 whose body is cut short is followed, as plain requests follows it, sent once."""
    with make() as http:
        response = http.get(cut_redirect.url + "/cut")
    assert (response.status_code, response.text) == (200, "ok")
    assert cut_redirect.paths == ["/cut", "/land"]


@pytest.mark.parametrize("make", SESSIONS.values(), ids=SESSIONS.keys())
def test_response_hook_reads_the_raw_body(
    make: Callable[[], requests.Session], fault_server: FaultServer
) -> None:
    """A response hook reads the raw body from ``r.raw``, as with plain requests."""
    packed = gzip.compress(b"hello, hook")
    fault_server.script("/hooked", [Reply(200, headers={"Content-Encoding": "gzip"}, body=packed)])
    seen: list[bytes] = []

    def hook(response: requests.Response, **kwargs: Any) -> None:
        seen.append(response.raw.read())

    with make() as http:
        http.get(fault_server.url + "/hooked", hooks={"response": hook})
    assert seen == [packed]


@pytest.mark.parametrize("make", SESSIONS.values(), ids=SESSIONS.keys())
def test_invalid_gzip_on_a_final_200_is_requests_error(
    make: Callable[[], requests.Session], fault_server: FaultServer
) -> None:
    """A 200 whose gzip body is invalid raises requests' ContentDecodingError, sent once."""
    bad = {"Content-Encoding": "gzip"}
    fault_server.script("/garbled", [Reply(200, headers=bad, body=b"this is not gzip")])
    with make() as http, pytest.raises(requests.exceptions.ContentDecodingError):
        http.get(fault_server.url + "/garbled")
    assert len(fault_server.arrivals("/garbled")) == 1


# -- timeouts and the deadline ----------------------------------------------------------------


def test_timeout_bounds_each_attempt_not_the_call(raw_faults: RawFaults) -> None:
    """timeout= bounds one attempt: a server that never answers costs one timeout per attempt."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    http = requests.Session()
    http.mount("http://", RetryAdapter(HTTPAdapter(), policy=Policy(max_attempts=3, backoff=EXACT)))
    start = time.monotonic()
    with http, pytest.raises(requests.exceptions.ReadTimeout):
        http.get(raw_faults.url + "/silent", timeout=0.2)
    elapsed = time.monotonic() - start
    assert len(raw_faults.arrivals()) == 3
    assert 3 * 0.2 <= elapsed < 3 * 0.2 + 1.0


def test_deadline_bounds_the_whole_call(raw_faults: RawFaults) -> None:
    """Policy(deadline=) stops further attempts: the call ends within deadline + one timeout."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    policy = Policy(max_attempts=50, deadline=0.5, backoff=EXACT)
    http = requests.Session()
    http.mount("http://", RetryAdapter(policy=policy))
    start = time.monotonic()
    with http, pytest.raises(requests.exceptions.ReadTimeout) as caught:
        http.get(raw_faults.url + "/silent", timeout=0.2)
    elapsed = time.monotonic() - start
    assert elapsed < 0.5 + 0.2 + 0.5
    assert 2 <= len(raw_faults.arrivals()) <= 4
    assert "deadline" in getattr(caught.value, "__notes__", [""])[0]
