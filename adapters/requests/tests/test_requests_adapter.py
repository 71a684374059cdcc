"""`RetryAdapter` under `requests.Session`, against the real fault servers on loopback."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests_raw_servers import SocketServer
from urllib3.util.retry import Retry

import forbear
from forbear import (
    Backoff,
    ErrorKind,
    Event,
    HostGate,
    Policy,
    RetryBudget,
    TokenExchangeError,
    TokenSource,
    error_kind,
)
from forbear_requests import RetryAdapter, _adapter
from forbear_testing import FaultServer, RawFaults, RawMode, Reply

FAST = Policy(backoff=Backoff(initial=0.01, max=0.05))
MIB = 1 << 20


def notes(exc: BaseException) -> list[str]:
    """The notes added to an exception."""
    return list(getattr(exc, "__notes__", []))


def session(inner: BaseAdapter | None = None, **options: Any) -> requests.Session:
    """A session whose ``http://`` adapter retries with the fast policy (plus ``options``)."""
    options.setdefault("policy", FAST)
    http = requests.Session()
    http.mount("http://", RetryAdapter(inner, **options))
    return http


def inner_pool(maxsize: int, *, block: bool = False) -> HTTPAdapter:
    """An inner `HTTPAdapter` whose pools hold ``maxsize`` connections."""
    return HTTPAdapter(pool_maxsize=maxsize, pool_block=block)


def adapter_of(http: requests.Session) -> RetryAdapter:
    """The `RetryAdapter` mounted on ``http://``."""
    adapter = http.get_adapter("http://")
    assert isinstance(adapter, RetryAdapter)
    return adapter


def pooled_socket(http: requests.Session) -> tuple[str, int]:
    """The local address of the one idle connection in the session's pool of one."""
    inner = adapter_of(http).inner
    assert isinstance(inner, HTTPAdapter)
    pools = inner.poolmanager.pools
    (key,) = pools.keys()
    idle = [conn for conn in pools[key].pool.queue if conn is not None]
    assert len(idle) == 1 and idle[0].sock is not None, "expected one open, idle connection"
    host, port = idle[0].sock.getsockname()
    return host, port


# -- mounting, the inner adapter and urllib3's retries -----------------------------------------


def test_default_inner_keeps_urllib3_retries_off() -> None:
    """The default inner HTTPAdapter has urllib3's Retry at zero: its retries never stack."""
    adapter = RetryAdapter()
    assert isinstance(adapter.inner, HTTPAdapter)
    assert isinstance(adapter.inner.max_retries, Retry)
    assert adapter.inner.max_retries.total == 0
    assert adapter.inner.max_retries.read is False
    adapter.close()


def test_inner_adapter_sends_every_attempt(fault_server: FaultServer) -> None:
    """A given inner adapter (positional) sends each attempt with its own pool options."""

    class Counting(HTTPAdapter):
        sends = 0

        def send(self, *args: Any, **kwargs: Any) -> requests.Response:
            Counting.sends += 1
            return super().send(*args, **kwargs)

    inner = Counting(pool_maxsize=7, pool_block=True)
    fault_server.script("/counted", [Reply(503)])
    with session(inner) as http:
        assert http.get(fault_server.url + "/counted").status_code == 200
        assert adapter_of(http).inner is inner
    assert inner.poolmanager.connection_pool_kw == {"maxsize": 7, "block": True}
    assert Counting.sends == len(fault_server.arrivals("/counted")) == 2


@pytest.mark.parametrize("retries", [3, Retry(total=2), Retry(total=None, connect=2)], ids=repr)
def test_inner_adapter_with_urllib3_retries_is_refused(retries: Any) -> None:
    """An inner HTTPAdapter that retries on its own is refused: it would multiply attempts."""
    with pytest.raises(ValueError, match="max_retries=0"):
        RetryAdapter(HTTPAdapter(max_retries=retries))


def test_inner_adapter_without_retries_is_accepted() -> None:
    """max_retries=0 (requests' default) and Retry(total=False) are accepted as they are."""
    for retries in (0, Retry(0), Retry(total=False)):
        inner = HTTPAdapter(max_retries=retries)
        assert RetryAdapter(inner).inner is inner


def test_inner_must_be_a_requests_adapter() -> None:
    """An inner that is no requests adapter, or a pool option, is refused at construction."""
    with pytest.raises(TypeError, match="BaseAdapter"):
        RetryAdapter(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RetryAdapter(max_retries=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RetryAdapter(pool_maxsize=3)  # type: ignore[call-arg]


def test_close_closes_the_inner_pool(fault_server: FaultServer) -> None:
    """Closing the session closes the inner adapter's connection pools."""
    inner = inner_pool(2)
    with session(inner) as http:
        assert http.get(fault_server.url + "/open").status_code == 200
        assert len(inner.poolmanager.pools) == 1
    assert len(inner.poolmanager.pools) == 0


def test_gate_and_budget_default_to_the_process_scope() -> None:
    """Adapters built without gate=/budget= share the process's; None goes without."""
    first, second = RetryAdapter(), RetryAdapter()
    assert first.retrier.gate is second.retrier.gate is forbear.process_gate()
    assert first.retrier.budget is second.retrier.budget is forbear.process_budget()
    alone = RetryAdapter(gate=None, budget=None)
    assert alone.retrier.gate is None and alone.retrier.budget is None


@pytest.mark.parametrize("name", ["gate", "budget"])
def test_gate_and_budget_take_no_bools(name: str) -> None:
    """gate=True / budget=True is refused: the scope is an object, the process's, or None."""
    with pytest.raises(TypeError, match=name):
        RetryAdapter(**{name: True})  # type: ignore[arg-type]


# -- the gate's key and the send options --------------------------------------------------------


class KeyRecordingGate(HostGate):
    """A `HostGate` that records the key of every first-attempt success."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    def succeeded(self, key: str, headers: Any = None, now: float = 0.0) -> None:
        self.keys.append(key)
        super().succeeded(key, headers, now)


def test_gate_key_is_the_origin_of_each_url(fault_server: FaultServer) -> None:
    """The gate hears ``origin_of(url)`` for every URL shape, the cached origins included."""
    port = fault_server.url.rsplit(":", 1)[1]
    urls = [
        f"{fault_server.url}/a?x=1",
        f"{fault_server.url}/b/c#frag",
        f"http://user:secret@127.0.0.1:{port}/d",
        f"http://LOCALHOST:{port}/e",
        f"HTTP://127.0.0.1:{port}?q=/f",
        f"{fault_server.url}/a?x=2",
    ]
    gate = KeyRecordingGate()
    # The same authority on another scheme is another origin, cached first.
    assert _adapter._origin(f"https://127.0.0.1:{port}/x") == f"https://127.0.0.1:{port}"
    with session(gate=gate, budget=None) as http:
        for url in urls:
            assert http.get(url).status_code == 200
        # A URL with no path at all (requests adds one; a custom caller may not), after an
        # origin one character shorter was cached: it is not read as that origin.
        _adapter._origin(f"http://127.0.0.1:{port[:-1]}/")
        request = requests.Request("GET", fault_server.url + "/").prepare()
        request.url = fault_server.url
        assert adapter_of(http).send(request).status_code == 200
    sent = [requests.Request("GET", url).prepare().url or "" for url in urls]
    assert gate.keys == [forbear.origin_of(url) for url in sent] + [fault_server.url]
    assert set(gate.keys) == {fault_server.url, f"http://localhost:{port}"}


def test_send_options_reach_the_inner_adapter_on_every_attempt(fault_server: FaultServer) -> None:
    """stream, timeout, verify, cert and proxies go to ``inner.send`` on each attempt."""
    seen: list[tuple[Any, ...]] = []

    class Recording(HTTPAdapter):
        def send(self, request: requests.PreparedRequest, *options: Any) -> requests.Response:
            seen.append(options)
            return super().send(request, *options)

    fault_server.script("/options", [Reply(503)])
    with session(Recording()) as http:
        response = http.get(
            fault_server.url + "/options", stream=True, timeout=(3.0, 4.0), verify=False
        )
        assert response.status_code == 200 and response.content == b"ok"
    assert len(seen) == 2 and seen[0] == seen[1]
    stream, timeout, verify, _, _ = seen[0]
    assert (stream, timeout, verify) == (True, (3.0, 4.0), False)


# -- per-request overrides ---------------------------------------------------------------------


def test_overrides_block_sends_once(fault_server: FaultServer) -> None:
    """Inside forbear.overrides(retries=False) a request is sent once; outside it retries."""
    fault_server.always("/once", Reply(503))
    with session() as http:
        with forbear.overrides(retries=False):
            assert http.get(fault_server.url + "/once").status_code == 503
        assert len(fault_server.arrivals("/once")) == 1
        with forbear.overrides(policy=Policy(max_attempts=2, backoff=FAST.backoff)):
            assert http.get(fault_server.url + "/once").status_code == 503
    assert len(fault_server.arrivals("/once")) == 3


# -- the final response ------------------------------------------------------------------------


def test_503_then_200_returns_the_200(fault_server: FaultServer) -> None:
    """A 503 is retried and the 200 comes back, body intact."""
    fault_server.script("/flaky", [Reply(503, body=b"busy")])
    with session() as http:
        response = http.get(fault_server.url + "/flaky")
    assert (response.status_code, response.text) == (200, "ok")
    assert [a.status for a in fault_server.arrivals("/flaky")] == [503, 200]


def test_stream_gets_the_final_response_unread(fault_server: FaultServer) -> None:
    """With stream=True the retried-to response arrives unread and streams to the end."""
    fault_server.script(
        "/big", [Reply(503, body_size=MIB), Reply(200, body_size=3 * MIB, chunk_size=8192)]
    )
    with session() as http, http.get(fault_server.url + "/big", stream=True) as response:
        assert response.status_code == 200
        assert response.raw.tell() == 0
        size = sum(len(chunk) for chunk in response.iter_content(64 * 1024))
    assert size == 3 * MIB
    assert [a.status for a in fault_server.arrivals("/big")] == [503, 200]


def test_returns_the_last_response_when_attempts_run_out(fault_server: FaultServer) -> None:
    """After max_attempts 503s the last 503 itself is returned, readable."""
    fault_server.always("/down", Reply(503, body=b"still down"))
    with session(policy=Policy(max_attempts=3, backoff=FAST.backoff)) as http:
        response = http.get(fault_server.url + "/down")
    assert (response.status_code, response.text) == (503, "still down")
    assert len(fault_server.arrivals("/down")) == 3


def test_body_cut_short_is_the_clients_to_raise(partial_server: SocketServer) -> None:
    """A 200 whose body is cut short is handed back: requests raises reading it, sent once."""
    partial_server.hold = False
    with session() as http, pytest.raises(requests.exceptions.ChunkedEncodingError) as caught:
        http.get(partial_server.url + "/cut")
    assert partial_server.connections == 1
    assert error_kind(caught.value) is ErrorKind.DISCONNECT
    assert notes(caught.value) == []


def test_half_response_with_stream_is_the_callers_to_read(partial_server: SocketServer) -> None:
    """With stream=True the response is handed over at its headers; the cut shows on reading."""
    partial_server.hold = False
    with session() as http, http.get(partial_server.url + "/half", stream=True) as response:
        assert response.status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            response.content  # noqa: B018
    assert partial_server.connections == 1


# -- discarded responses and the pool ---------------------------------------------------------


def test_small_discarded_body_is_read_so_its_connection_is_reused(
    fault_server: FaultServer,
) -> None:
    """A discarded 503 with a small body is read, and the retry reuses its connection."""
    url = fault_server.url + "/small"
    with session(inner_pool(1)) as http:
        assert http.get(url).status_code == 200
        before = pooled_socket(http)
        fault_server.script("/small", [Reply(503, body=b"x" * 1000)])
        assert http.get(url).status_code == 200
        assert pooled_socket(http) == before
    assert [a.status for a in fault_server.arrivals("/small")] == [200, 503, 200]


def test_large_discarded_body_is_closed_not_drained(fault_server: FaultServer) -> None:
    """A discarded 20 MB body is closed unread: its connection is dropped, not drained."""
    url = fault_server.url + "/large"
    with session(inner_pool(1)) as http:
        assert http.get(url).status_code == 200
        before = pooled_socket(http)
        fault_server.script("/large", [Reply(503, body_size=20 * MIB)])
        assert http.get(url).status_code == 200
        assert pooled_socket(http) != before
    assert [a.status for a in fault_server.arrivals("/large")] == [200, 503, 200]


def test_compressed_discarded_body_is_closed_unread(fault_server: FaultServer) -> None:
    """A discarded small gzip 503 is closed unread (the one release policy), not drained."""
    url = fault_server.url + "/gz"
    with session(inner_pool(1)) as http:
        assert http.get(url).status_code == 200
        before = pooled_socket(http)
        packed = gzip.compress(b"busy" * 100)
        fault_server.script("/gz", [Reply(503, headers={"Content-Encoding": "gzip"}, body=packed)])
        assert http.get(url).status_code == 200
        assert pooled_socket(http) != before
    assert [a.status for a in fault_server.arrivals("/gz")] == [200, 503, 200]


@pytest.mark.parametrize("stream", [False, True], ids=["read", "stream"])
def test_pool_of_one_with_20mb_error_bodies_does_not_hang(
    fault_server: FaultServer, stream: bool
) -> None:
    """Through a blocking pool of one, 20 MB 503s on every retry leave the slot free each time."""
    fault_server.script("/huge", [Reply(503, body_size=20 * MIB) for _ in range(4)])
    url = fault_server.url + "/huge"
    with session(inner_pool(1, block=True)) as http:
        with http.get(url, stream=stream, timeout=5) as response:
            assert (response.status_code, response.content) == (200, b"ok")
        # The pool's one connection is back: a second request gets it without waiting.
        assert http.get(url, timeout=5).status_code == 200
    assert [a.status for a in fault_server.arrivals("/huge")] == [503] * 4 + [200, 200]


def test_final_20mb_error_body_is_handed_back_whole(fault_server: FaultServer) -> None:
    """When attempts run out, the last 20 MB 503 is returned with its whole body."""
    fault_server.always("/huge-down", Reply(503, body_size=20 * MIB))
    with session(inner_pool(1), policy=Policy(max_attempts=2, backoff=FAST.backoff)) as http:
        response = http.get(fault_server.url + "/huge-down")
    assert (response.status_code, len(response.content)) == (503, 20 * MIB)
    assert len(fault_server.arrivals("/huge-down")) == 2


# -- request bodies ---------------------------------------------------------------------------


def test_seekable_file_body_is_replayed_from_where_it_started(fault_server: FaultServer) -> None:
    """A file already read part-way is re-sent from that offset, byte for byte, each time."""
    fault_server.script("/upload", [Reply(503), Reply(500)])
    body = io.BytesIO(b"header-to-skip|" + bytes(range(256)) * 64)
    body.read(len(b"header-to-skip|"))
    with session() as http:
        response = http.put(fault_server.url + "/upload", data=body)
    assert response.status_code == 200
    sent = [arrival.body for arrival in fault_server.arrivals("/upload")]
    assert sent == [bytes(range(256)) * 64] * 3


def test_real_file_body_is_replayed_byte_for_byte(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """An open file on disk is rewound before every re-send: each arrival is the whole file."""
    path = tmp_path / "payload.bin"
    payload = os.urandom(300_000)
    path.write_bytes(payload)
    fault_server.script("/file", [Reply(503), Reply(503)])
    with session() as http, path.open("rb") as body:
        response = http.put(fault_server.url + "/file", data=body)
    assert response.status_code == 200
    assert [arrival.body for arrival in fault_server.arrivals("/file")] == [payload] * 3


def test_str_body_is_replayed(fault_server: FaultServer) -> None:
    """A str body is sent again on a retry, whole."""
    fault_server.script("/text", [Reply(503)])
    with session() as http:
        assert http.put(fault_server.url + "/text", data="déjà vu").status_code == 200
    assert [a.body for a in fault_server.arrivals("/text")] == ["déjà vu".encode()] * 2


def test_generator_body_is_sent_once_and_its_answer_handed_back(
    fault_server: FaultServer,
) -> None:
    """A generator body is sent once: the 503 it met is returned as it is."""
    fault_server.script("/gen", [Reply(503, body=b"busy")])
    chunks = (chunk for chunk in [b"one|", b"two|", b"three"])
    with session() as http:
        response = http.put(fault_server.url + "/gen", data=chunks)
    assert (response.status_code, response.text) == (503, "busy")
    assert [a.body for a in fault_server.arrivals("/gen")] == [b"one|two|three"]


def test_non_seekable_stream_is_sent_once(fault_server: FaultServer) -> None:
    """A pipe (a file that cannot seek) is sent once; its 503 is handed back."""
    fault_server.script("/pipe", [Reply(503, body=b"busy")])
    read_end, write_end = os.pipe()
    with open(write_end, "wb") as writer:
        writer.write(b"streamed once")
    with session() as http, open(read_end, "rb") as body:
        response = http.put(fault_server.url + "/pipe", data=body)  # sent chunked
    assert (response.status_code, response.text) == (503, "busy")
    assert [a.body for a in fault_server.arrivals("/pipe")] == [b"streamed once"]


def test_generator_body_error_is_raised_after_one_send(raw_faults: RawFaults) -> None:
    """A generator body that meets a reset is not re-sent: the error comes back at once."""
    with session() as http, pytest.raises(requests.ConnectionError) as caught:
        http.put(raw_faults.url + "/gen", data=(chunk for chunk in [b"a", b"b"]))
    assert len(raw_faults.arrivals()) == 1
    assert any("body-not-replayable" in note for note in notes(caught.value))


# -- transport errors -------------------------------------------------------------------------


def test_refused_connection_error_is_reraised_unchanged_with_a_note(refused_port: int) -> None:
    """A refused POST never left: retried to the cap, then the ConnectionError itself raised."""
    with session() as http, pytest.raises(requests.ConnectionError) as caught:
        http.post(f"http://127.0.0.1:{refused_port}/orders", data=b"{}")
    assert type(caught.value) is requests.ConnectionError
    assert error_kind(caught.value) is ErrorKind.CONNECT
    (note,) = notes(caught.value)
    assert note.startswith("forbear: POST made 5 send(s)")
    assert "#5 connect: give-up (attempts-exhausted)" in note


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port of 127.0.0.1 whose accept queue is full: new connections time out connecting."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # the handshake completes in the kernel
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_connect_timeout_is_retried_even_for_a_post(full_backlog: int) -> None:
    """ConnectTimeout means never sent: a POST is retried to the cap, then raised as it is."""
    with session() as http, pytest.raises(requests.exceptions.ConnectTimeout) as caught:
        http.post(f"http://127.0.0.1:{full_backlog}/orders", data=b"{}", timeout=(0.05, 1))
    assert error_kind(caught.value) is ErrorKind.CONNECT_TIMEOUT
    assert "#5 connect_timeout: give-up (attempts-exhausted)" in notes(caught.value)[0]


def test_read_timeout_get_is_retried(raw_faults: RawFaults) -> None:
    """ReadTimeout may mean sent: a GET is retried to the cap, then the ReadTimeout raised."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    with session() as http, pytest.raises(requests.exceptions.ReadTimeout) as caught:
        http.get(raw_faults.url + "/slow", timeout=0.05)
    assert len(raw_faults.arrivals()) == 5
    assert "#5 read_timeout: give-up" in notes(caught.value)[0]


def test_read_timeout_mid_body_is_the_clients_to_raise(partial_server: SocketServer) -> None:
    """A body that stalls past the read timeout fails as requests reads it: sent once."""
    with session() as http, pytest.raises(requests.ConnectionError) as caught:
        http.get(partial_server.url + "/stall", timeout=0.05)
    assert error_kind(caught.value) is ErrorKind.READ_TIMEOUT
    assert partial_server.connections == 1
    assert notes(caught.value) == []


def test_reset_after_post_is_not_retried(raw_faults: RawFaults) -> None:
    """A reset after the POST was sent may mean it was acted on: one send, error raised."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    with session() as http, pytest.raises(requests.ConnectionError) as caught:
        http.post(raw_faults.url + "/orders", data=b"{}")
    assert len(raw_faults.arrivals()) == 1
    assert error_kind(caught.value) in (ErrorKind.DISCONNECT, ErrorKind.PROTOCOL)
    assert "not-safe-to-retry" in notes(caught.value)[0]


def test_unrecognised_errors_are_not_retried(fault_server: FaultServer) -> None:
    """An error that is no transport failure (an invalid URL) is raised at once, note-free."""
    with session() as http, pytest.raises(requests.exceptions.InvalidURL) as caught:
        http.get("http://[::1/nope")
    assert notes(caught.value) == []


# -- idempotency keys, request ids and the caller's request -----------------------------------


def test_idempotency_key_is_one_per_logical_request(fault_server: FaultServer) -> None:
    """With keys on, a POST's retries share one key; the next POST gets another."""
    fault_server.script("/orders", [Reply(503), Reply(503)])
    with session(idempotency_keys=True) as http:
        assert http.post(fault_server.url + "/orders", data=b"{}").status_code == 200
        assert http.post(fault_server.url + "/orders", data=b"{}").status_code == 200
    keys = [a.header("idempotency-key") for a in fault_server.arrivals("/orders")]
    assert len(keys) == 4 and keys[0] == keys[1] == keys[2] and keys[3] not in (None, keys[0])


def test_caller_prepared_request_is_not_changed(fault_server: FaultServer) -> None:
    """Headers forbear adds go on a copy: the same PreparedRequest sent twice gets two keys."""
    with session(idempotency_keys=True, request_ids=True) as http:
        prepared = http.prepare_request(
            requests.Request("POST", fault_server.url + "/p", data=b"x")
        )
        first, second = http.send(prepared), http.send(prepared)
        assert "Idempotency-Key" not in prepared.headers
        assert "X-Request-Id" not in prepared.headers
        assert first.request.headers["Idempotency-Key"] != second.request.headers["Idempotency-Key"]
    arrivals = fault_server.arrivals("/p")
    assert len({a.header("idempotency-key") for a in arrivals}) == 2
    assert len({a.header("x-request-id") for a in arrivals}) == 2


# -- tokens -----------------------------------------------------------------------------------


def test_401_reexchanges_once_and_resends(fault_server: FaultServer) -> None:
    """A stale token's 401 triggers one exchange; the resend carries the new token."""
    fault_server.require_token("/me")
    token = TokenSource(fault_server.issue_token, origins=[fault_server.url], token="stale")
    with session(token=token) as http:
        response = http.get(fault_server.url + "/me")
    assert response.status_code == 200
    assert token.exchanges == 1
    sent = [a.header("authorization") for a in fault_server.arrivals("/me")]
    assert sent[0] == "Bearer stale" and sent[1] not in (None, "Bearer stale")


def test_hundred_threads_on_one_401_share_one_exchange(fault_server: FaultServer) -> None:
    """100 threads meeting the same stale token's 401 make exactly one exchange."""
    fault_server.require_token("/shared")
    token = TokenSource(fault_server.issue_token, origins=[fault_server.url], token="stale")
    barrier = threading.Barrier(100)
    with session(inner_pool(100), token=token) as http:

        def one() -> int:
            barrier.wait(timeout=30)
            return http.get(fault_server.url + "/shared", timeout=10).status_code

        with ThreadPoolExecutor(100) as pool:
            statuses = list(pool.map(lambda _: one(), range(100)))
    assert statuses == [200] * 100
    assert token.exchanges == 1
    assert fault_server.tokens_issued == 1
    assert 101 <= len(fault_server.arrivals("/shared")) <= 200


def test_token_goes_only_to_its_origin(fault_server: FaultServer) -> None:
    """A request to another origin (localhost, same server) never carries the token."""
    token = TokenSource(lambda: "fresh", origins=[fault_server.url], token="secret-token")
    other = fault_server.url.replace("127.0.0.1", "localhost")
    with session(token=token) as http:
        assert http.get(other + "/elsewhere").status_code == 200
        assert http.get(fault_server.url + "/here").status_code == 200
    assert fault_server.arrivals("/elsewhere")[0].header("authorization") is None
    assert fault_server.arrivals("/here")[0].header("authorization") == "Bearer secret-token"


def test_redirect_to_another_origin_drops_the_token(fault_server: FaultServer) -> None:
    """A 307 to another origin is followed without the token; the first hop carried it."""
    other = fault_server.url.replace("127.0.0.1", "localhost")
    fault_server.script("/moved", [Reply(307, headers={"Location": other + "/landing"})])
    token = TokenSource(lambda: "fresh", origins=[fault_server.url], token="secret-token")
    with session(token=token) as http:
        response = http.get(fault_server.url + "/moved")
    assert response.status_code == 200
    assert fault_server.arrivals("/moved")[0].header("authorization") == "Bearer secret-token"
    assert fault_server.arrivals("/landing")[0].header("authorization") is None


def test_failing_exchange_propagates_without_retrying(fault_server: FaultServer) -> None:
    """TokenExchangeError reaches the caller; the refused request is not sent again."""
    fault_server.require_token("/locked")

    def exchange() -> str:
        raise RuntimeError("identity provider down, password=hunter2")

    token = TokenSource(exchange, origins=[fault_server.url], token="stale")
    with session(token=token) as http, pytest.raises(TokenExchangeError) as caught:
        http.get(fault_server.url + "/locked")
    assert "hunter2" not in str(caught.value)
    assert len(fault_server.arrivals("/locked")) == 1


def test_secrets_stay_out_of_notes_and_events(fault_server: FaultServer) -> None:
    """The token and API key never appear in the exception note or the events."""
    fault_server.always("/secret", Reply(503))
    events: list[Event] = []
    token = TokenSource(lambda: "t", origins=[fault_server.url], token="tok-SECRET")
    with session(token=token, on_event=events.append) as http:
        response = http.get(
            fault_server.url + "/secret?api_key=KEY-SECRET", headers={"X-API-Key": "KEY-SECRET"}
        )
    assert response.status_code == 503
    text = " ".join(repr(event) for event in events)
    assert len(events) == 5 and "SECRET" not in text


# -- pickling ---------------------------------------------------------------------------------


def test_pickled_session_still_retries(fault_server: FaultServer) -> None:
    """pickle.loads(pickle.dumps(session)) keeps the adapter, its policy and its options."""
    policy = Policy(max_attempts=3, backoff=FAST.backoff)
    with session(inner_pool(4), policy=policy, idempotency_keys=True) as original:
        copy = pickle.loads(pickle.dumps(original))
    fault_server.always("/pickled", Reply(503))
    with copy:
        adapter = adapter_of(copy)
        assert adapter.retrier.policy == policy
        assert isinstance(adapter.inner, HTTPAdapter)
        assert adapter.inner.poolmanager.connection_pool_kw["maxsize"] == 4
        assert adapter.retrier.gate is forbear.process_gate()
        assert adapter.retrier.budget is forbear.process_budget()
        response = copy.post(fault_server.url + "/pickled", data=b"{}")
    assert response.status_code == 503
    arrivals = fault_server.arrivals("/pickled")
    assert len(arrivals) == 3
    assert len({a.header("idempotency-key") for a in arrivals}) == 1


def test_pickling_keeps_gate_and_budget_off_when_off() -> None:
    """gate=None and budget=None survive pickling as None."""
    adapter = pickle.loads(pickle.dumps(RetryAdapter(gate=None, budget=None)))
    assert adapter.retrier.gate is None and adapter.retrier.budget is None
    adapter.close()


def test_pickling_gives_an_own_gate_and_budget_fresh_ones() -> None:
    """An adapter's own gate and budget come back as fresh ones of its own, not the process's."""
    adapter = pickle.loads(pickle.dumps(RetryAdapter(gate=HostGate(), budget=RetryBudget())))
    assert isinstance(adapter.retrier.gate, HostGate)
    assert isinstance(adapter.retrier.budget, RetryBudget)
    assert adapter.retrier.gate is not forbear.process_gate()
    assert adapter.retrier.budget is not forbear.process_budget()
    adapter.close()


def test_pickling_an_adapter_with_a_token_is_refused() -> None:
    """A token source holds a live credential: pickling says so instead of dropping it."""
    token = TokenSource(lambda: "t", origins=["http://127.0.0.1"], token="tok-SECRET")
    adapter = RetryAdapter(token=token)
    with pytest.raises(TypeError, match="token") as caught:
        pickle.dumps(adapter)
    assert "SECRET" not in str(caught.value)
    adapter.close()


# -- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "bytes"])
def test_32_threads_share_one_adapter_as_if_separate(kind: str, fault_server: FaultServer) -> None:
    """32 workers on one adapter: each logical request keeps its own attempts, key, body and
    send options (a file body has state of its own per request; a body in memory has none)."""
    for n in range(32):
        fault_server.script(f"/worker/{n}", [Reply(503), Reply(502)])
    # No budget: 64 retries for 32 first attempts is an outage to a budget, not the point here.
    with session(inner_pool(32), idempotency_keys=True, budget=None) as http:
        attributes = dict(vars(adapter_of(http)))

        def work(n: int) -> tuple[int, bytes]:
            body: Any = f"worker {n}".encode()
            if kind == "file":
                body = io.BytesIO(f"prefix|worker {n}".encode())
                body.read(len("prefix|"))
            # Every other worker streams: the option must reach its own attempts only.
            response = http.post(fault_server.url + f"/worker/{n}", data=body, stream=n % 2 == 1)
            assert response.raw.tell() == (0 if n % 2 else 2)
            return response.status_code, response.content

        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(work, range(32)))
        assert dict(vars(adapter_of(http))) == attributes  # no per-request state on the adapter
    assert results == [(200, b"ok")] * 32
    keys = set()
    for n in range(32):
        arrivals = fault_server.arrivals(f"/worker/{n}")
        assert [a.status for a in arrivals] == [503, 502, 200]
        assert [a.body for a in arrivals] == [f"worker {n}".encode()] * 3
        (key,) = {a.header("idempotency-key") for a in arrivals}
        keys.add(key)
    assert len(keys) == 32 and None not in keys
