"""`RetryTransport` under `httpx.Client`, against the real fault servers on loopback."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import forbear
from forbear import Backoff, Event, HostGate, Policy, RetryBudget, TokenExchangeError, TokenSource
from forbear_httpx import RetryTransport
from forbear_testing import FaultServer, RawFaults, RawMode, Reply, serve

FAST = Policy(backoff=Backoff(initial=0.01, max=0.05))
MIB = 1 << 20


def notes(exc: BaseException) -> list[str]:
    """The notes added to an exception."""
    return list(getattr(exc, "__notes__", []))


def client(**options: Any) -> httpx.Client:
    """A client whose transport retries with the fast policy (plus ``options``)."""
    options.setdefault("policy", FAST)
    return httpx.Client(transport=RetryTransport(**options))


# -- the final response is handed back unread -----------------------------------------------


def test_stream_gets_the_final_response_unread(fault_server: FaultServer) -> None:
    """`client.stream` still streams: the retried-to response arrives unread."""
    fault_server.script(
        "/big", [Reply(503, body_size=MIB), Reply(200, body_size=3 * MIB, chunk_size=8192)]
    )
    with client() as http, http.stream("GET", fault_server.url + "/big") as response:
        assert response.status_code == 200
        assert not response.is_stream_consumed
        size = sum(len(chunk) for chunk in response.iter_bytes())
    assert size == 3 * MIB
    assert [a.status for a in fault_server.arrivals("/big")] == [503, 200]


def test_returns_the_last_response_when_attempts_run_out(fault_server: FaultServer) -> None:
    """After max_attempts 503s the last 503 itself is returned, readable."""
    fault_server.always("/down", Reply(503, body=b"still down"))
    with client(policy=Policy(max_attempts=3, backoff=FAST.backoff)) as http:
        response = http.get(fault_server.url + "/down")
    assert (response.status_code, response.text) == (503, "still down")
    assert len(fault_server.arrivals("/down")) == 3


# -- discarded responses ----------------------------------------------------------------------


def _connections(http: httpx.Client, url: str) -> int:
    """How many TCP connections one logical GET opened (counted by httpcore's trace hook)."""
    opened = []

    def trace(name: str, info: dict[str, Any]) -> None:
        if name == "connection.connect_tcp.complete":
            opened.append(name)

    http.get(url, extensions={"trace": trace})
    return len(opened)


def test_small_discarded_body_is_read_so_its_connection_is_reused(
    fault_server: FaultServer,
) -> None:
    """A discarded 503 with a small body is read, and the retry reuses its connection."""
    fault_server.script("/small", [Reply(503, body=b"x" * 1000)])
    with client() as http:
        assert _connections(http, fault_server.url + "/small") == 1
    assert len(fault_server.arrivals("/small")) == 2


def test_large_discarded_body_is_closed_unread(fault_server: FaultServer) -> None:
    """A discarded 503 with a large body is closed, not drained: the retry connects anew."""
    fault_server.script("/large", [Reply(503, body_size=8 * MIB)])
    with client() as http:
        assert _connections(http, fault_server.url + "/large") == 2
    assert len(fault_server.arrivals("/large")) == 2


# -- mounts and delegation --------------------------------------------------------------------


def test_mounts_retry_only_the_mounted_origin(fault_server: FaultServer) -> None:
    """Mounted on one origin, the transport retries there; other origins are sent once."""
    with serve() as other:
        for server in (fault_server, other):
            server.script("/m", [Reply(503)])
        mounts = {fault_server.url: RetryTransport(policy=FAST)}
        with httpx.Client(mounts=mounts) as http:
            assert http.get(fault_server.url + "/m").status_code == 200
            assert http.get(other.url + "/m").status_code == 503
        assert len(other.arrivals("/m")) == 1
    assert len(fault_server.arrivals("/m")) == 2


class CountingTransport(httpx.HTTPTransport):
    """A real `httpx.HTTPTransport` that counts how the client drives it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __enter__(self) -> CountingTransport:
        self.calls.append("enter")
        super().__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.calls.append("exit")
        super().__exit__(*exc_info)

    def close(self) -> None:
        self.calls.append("close")
        super().close()


def test_client_context_enters_and_exits_the_inner_transport(fault_server: FaultServer) -> None:
    """`with httpx.Client(...)` enters and exits the wrapped transport (its pool closes)."""
    inner = CountingTransport()
    with httpx.Client(transport=RetryTransport(inner)) as http:
        http.get(fault_server.url + "/")
        assert inner.calls == ["enter"]
    assert inner.calls[:2] == ["enter", "exit"]


def test_client_close_closes_the_inner_transport(fault_server: FaultServer) -> None:
    """`client.close()` closes the wrapped transport."""
    inner = CountingTransport()
    http = httpx.Client(transport=RetryTransport(inner))
    http.get(fault_server.url + "/")
    http.close()
    assert inner.calls == ["close"]


def test_default_inner_transport_is_made_on_first_use(fault_server: FaultServer) -> None:
    """Without a transport given, one `httpx.HTTPTransport` is made for the sync side only."""
    transport = RetryTransport(policy=FAST)
    assert transport.inner is None
    with httpx.Client(transport=transport) as http:
        assert http.get(fault_server.url + "/").status_code == 200
    assert transport.inner is None
    assert len(fault_server.arrivals("/")) == 1


def test_an_async_inner_transport_refuses_a_sync_client() -> None:
    """Wrapping an async-only transport and using it from `httpx.Client` is a clear TypeError."""
    transport = RetryTransport(httpx.AsyncHTTPTransport())
    with pytest.raises(TypeError, match=r"sync httpx\.Client needs a sync one"):
        httpx.Client(transport=transport).get("http://127.0.0.1:9/")
    with pytest.raises(TypeError, match=r"sync httpx\.Client needs a sync one"):
        httpx.Client(transport=transport).__enter__()


def test_a_non_transport_is_refused() -> None:
    """Anything but an httpx transport is refused at construction."""
    with pytest.raises(TypeError, match=r"must be an httpx\.BaseTransport"):
        RetryTransport("http://example.com")  # type: ignore[arg-type]


# -- per-request overrides --------------------------------------------------------------------


def test_retries_false_sends_once(fault_server: FaultServer) -> None:
    """``extensions={"forbear": {"retries": False}}`` sends one request and returns its 503."""
    fault_server.script("/once", [Reply(503)])
    with client() as http:
        response = http.get(fault_server.url + "/once", extensions={"forbear": {"retries": False}})
    assert response.status_code == 503
    assert len(fault_server.arrivals("/once")) == 1


def test_policy_override_applies_to_one_request(fault_server: FaultServer) -> None:
    """``{"policy": Policy(...)}`` governs that request only; the next uses the default."""
    fault_server.always("/p", Reply(503))
    two = Policy(max_attempts=2, backoff=FAST.backoff)
    with client(budget=None) as http:
        assert http.get(fault_server.url + "/p", extensions={"forbear": {"policy": two}})
        assert len(fault_server.arrivals("/p")) == 2
        http.get(fault_server.url + "/p")
    assert len(fault_server.arrivals("/p")) == 2 + FAST.max_attempts


def test_policy_override_may_allow_more_statuses(fault_server: FaultServer) -> None:
    """A per-request policy can retry a status the default returns (409 here)."""
    fault_server.script("/conflict", [Reply(409)])
    conflicts = Policy(retry_statuses=frozenset({409}), backoff=FAST.backoff)
    with client() as http:
        response = http.put(
            fault_server.url + "/conflict", extensions={"forbear": {"policy": conflicts}}
        )
    assert response.status_code == 200
    assert len(fault_server.arrivals("/conflict")) == 2


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"retry": False}, ValueError),
        ({"policy": {"max_attempts": 2}}, TypeError),
        ({"retries": 0}, TypeError),
        ([("retries", False)], TypeError),
    ],
)
def test_bad_overrides_fail_before_sending(
    fault_server: FaultServer, overrides: Any, error: type[Exception]
) -> None:
    """A mistyped override raises before anything is sent."""
    with client() as http, pytest.raises(error, match="forbear"):
        http.get(fault_server.url + "/bad", extensions={"forbear": overrides})
    assert fault_server.arrivals() == []


# -- transport errors -------------------------------------------------------------------------


def test_refused_connection_is_retried_then_raised_with_a_note(refused_port: int) -> None:
    """A refused connect is retried; the last `httpx.ConnectError` is raised with the history."""
    with client() as http, pytest.raises(httpx.ConnectError) as caught:
        http.get(f"http://127.0.0.1:{refused_port}/x")
    (note,) = notes(caught.value)
    assert note.startswith(f"forbear: GET made {FAST.max_attempts} send(s)")
    assert note.count("connect: retry") == FAST.max_attempts - 1
    assert "give-up (attempts-exhausted)" in note


def test_read_timeout_on_get_is_retried(raw_faults: RawFaults) -> None:
    """A GET that times out reading is retried; `httpx.ReadTimeout` is raised at the end."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    policy = Policy(max_attempts=3, backoff=FAST.backoff)
    with (
        httpx.Client(transport=RetryTransport(policy=policy), timeout=0.1) as http,
        pytest.raises(httpx.ReadTimeout) as caught,
    ):
        http.get(raw_faults.url + "/slow")
    assert len(raw_faults.arrivals()) == 3
    assert "read_timeout: give-up" in notes(caught.value)[0]


def test_post_dropped_after_sending_is_not_retried(raw_faults: RawFaults) -> None:
    """A POST whose connection drops after the request was read is raised, not re-sent."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    with client() as http, pytest.raises(httpx.TransportError) as caught:
        http.post(raw_faults.url + "/pay", content=b"amount=5")
    assert isinstance(caught.value, (httpx.ReadError, httpx.RemoteProtocolError))
    assert len(raw_faults.arrivals()) == 1
    assert "not-safe-to-retry" in notes(caught.value)[0]


def test_pool_timeout_is_raised_without_retrying(fault_server: FaultServer) -> None:
    """`httpx.PoolTimeout` is re-raised as it is: the request never went out, nothing retries."""
    inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1))
    timeout = httpx.Timeout(5.0, pool=0.05)
    with (
        httpx.Client(transport=RetryTransport(inner, policy=FAST), timeout=timeout) as http,
        http.stream("GET", fault_server.url + "/held"),
        pytest.raises(httpx.PoolTimeout),
    ):
        http.get(fault_server.url + "/starved")
    assert [a.path for a in fault_server.arrivals()] == ["/held"]


# -- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"content": b"raw bytes"},
        {"json": {"a": 1}},
        {"data": {"a": "1"}},
        {"files": {"upload": ("a.txt", io.BytesIO(b"file body"), "text/plain")}},
        {"files": {"upload": ("a.txt", b"inline file", "text/plain")}, "data": {"a": "1"}},
    ],
    ids=["content", "json", "data", "files-seekable", "files-bytes"],
)
def test_replayable_bodies_are_sent_again_whole(
    fault_server: FaultServer, body: dict[str, Any]
) -> None:
    """Bytes, JSON, form and multipart bodies are re-sent identical on the retry."""
    fault_server.script("/put", [Reply(503)])
    with client() as http:
        assert http.put(fault_server.url + "/put", **body).status_code == 200
    first, second = fault_server.arrivals("/put")
    assert first.body and first.body == second.body


def test_generator_body_is_sent_once_and_its_answer_returned(fault_server: FaultServer) -> None:
    """A generator body is sent once: its 503 is handed back, never `StreamConsumed`."""
    fault_server.script("/gen", [Reply(503)])

    def chunks() -> Iterator[bytes]:
        yield b"one "
        yield b"shot"

    with client() as http:
        response = http.put(fault_server.url + "/gen", content=chunks())
    assert response.status_code == 503
    assert [a.body for a in fault_server.arrivals("/gen")] == [b"one shot"]


def test_generator_body_transport_error_is_raised_after_one_send(raw_faults: RawFaults) -> None:
    """A generator body whose connection drops raises the transport error after one send."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    with client() as http, pytest.raises(httpx.TransportError) as caught:
        http.put(raw_faults.url + "/gen", content=iter([b"a", b"b"]))
    assert not isinstance(caught.value, httpx.StreamConsumed)
    assert len(raw_faults.arrivals()) == 1


def test_non_seekable_file_in_multipart_is_sent_once(fault_server: FaultServer) -> None:
    """A multipart body holding a file that cannot seek is not replayable: sent once."""

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = io.BytesIO(b"from a pipe")

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    fault_server.script("/pipe", [Reply(503)])
    with client() as http:
        pipe = io.BufferedReader(Pipe())
        response = http.put(fault_server.url + "/pipe", files={"f": ("p", pipe)})
    assert response.status_code == 503
    assert len(fault_server.arrivals("/pipe")) == 1


# -- token, idempotency keys, request ids -----------------------------------------------------


def test_token_is_attached_and_re_exchanged_once_on_401(fault_server: FaultServer) -> None:
    """The token goes on every request to its origin; a 401 re-exchanges it once and re-sends."""
    fault_server.require_token("/secure")
    token = TokenSource(fault_server.issue_token, origins=[fault_server.url])
    with client(token=token) as http:
        assert http.get(fault_server.url + "/secure").status_code == 200
        fault_server.expire_tokens()
        assert http.get(fault_server.url + "/secure").status_code == 200
    assert [a.status for a in fault_server.arrivals("/secure")] == [200, 401, 200]
    assert fault_server.tokens_issued == 2
    assert all(a.header("authorization") for a in fault_server.arrivals("/secure"))


def test_second_401_is_returned(fault_server: FaultServer) -> None:
    """A 401 after the one re-exchange is the answer: returned, no further exchange."""
    fault_server.always("/never", Reply(401))
    token = TokenSource(lambda: "whatever", origins=[fault_server.url])
    with client(token=token) as http:
        assert http.get(fault_server.url + "/never").status_code == 401
    assert len(fault_server.arrivals("/never")) == 2
    assert token.exchanges == 2  # the first token, then the one re-exchange


def test_token_stays_off_other_origins(fault_server: FaultServer) -> None:
    """A request to an origin the token source does not list carries no Authorization."""
    token = TokenSource(lambda: "secret-token", origins=["https://api.example.com"])
    with client(token=token) as http:
        http.get(fault_server.url + "/public")
    assert fault_server.arrivals("/public")[0].header("authorization") is None


def test_failed_exchange_propagates_without_sending(fault_server: FaultServer) -> None:
    """`TokenExchangeError` reaches the caller and the original request is never sent."""

    def broken() -> str:
        raise RuntimeError("vault password=hunter2 unreachable")

    token = TokenSource(broken, origins=[fault_server.url])
    with client(token=token) as http, pytest.raises(TokenExchangeError) as caught:
        http.get(fault_server.url + "/secure")
    assert "hunter2" not in str(caught.value)
    assert fault_server.arrivals() == []


def test_idempotency_key_is_added_to_post_and_kept_across_attempts(
    fault_server: FaultServer,
) -> None:
    """With ``idempotency_keys=True`` a POST gets one UUID key, the same on every attempt."""
    fault_server.script("/orders", [Reply(503), Reply(502)])
    with client(idempotency_keys=True) as http:
        assert http.post(fault_server.url + "/orders", json={"sku": 1}).status_code == 200
    keys = {a.header("idempotency-key") for a in fault_server.arrivals("/orders")}
    assert len(fault_server.arrivals("/orders")) == 3
    (key,) = keys
    assert key is not None and uuid.UUID(key)


def test_caller_idempotency_key_is_kept_and_get_gets_none(fault_server: FaultServer) -> None:
    """A caller's own key is sent untouched; a GET gets no key."""
    with client(idempotency_keys=True) as http:
        http.post(fault_server.url + "/mine", headers={"Idempotency-Key": "order-7"})
        http.get(fault_server.url + "/read")
    assert fault_server.arrivals("/mine")[0].header("idempotency-key") == "order-7"
    assert fault_server.arrivals("/read")[0].header("idempotency-key") is None


def test_post_without_key_is_not_retried_after_503(fault_server: FaultServer) -> None:
    """Without keys a POST's 503 is returned: it may have been acted on."""
    fault_server.script("/orders", [Reply(503)])
    with client() as http:
        assert http.post(fault_server.url + "/orders", json={}).status_code == 503
    assert len(fault_server.arrivals("/orders")) == 1


def test_request_ids_are_added_when_absent(fault_server: FaultServer) -> None:
    """With ``request_ids=True`` a request carries one UUID X-Request-Id; a caller's is kept."""
    fault_server.script("/a", [Reply(503)])
    with client(request_ids=True) as http:
        http.get(fault_server.url + "/a")
        http.get(fault_server.url + "/b", headers={"X-Request-Id": "mine-1"})
    first, retried = (a.header("x-request-id") for a in fault_server.arrivals("/a"))
    assert first is not None and uuid.UUID(first) and retried == first
    assert fault_server.arrivals("/b")[0].header("x-request-id") == "mine-1"


# -- events and shared pieces ----------------------------------------------------------------


def test_events_report_each_decision_without_secrets(fault_server: FaultServer) -> None:
    """`on_event` sees every decision; the token never appears in events or notes."""
    fault_server.require_token("/s")
    fault_server.script("/s", [Reply(503)])
    events: list[Event] = []
    token = TokenSource(fault_server.issue_token, origins=[fault_server.url])
    with client(token=token, on_event=events.append) as http:
        assert http.get(fault_server.url + "/s?api_key=sekrit").status_code == 200
    secret = fault_server.arrivals("/s")[-1].header("authorization")
    assert secret is not None
    assert [e.action.value for e in events] == ["retry", "return"]
    for event in events:
        assert secret.split()[-1] not in repr(event) and "sekrit" not in repr(event)


def test_gate_and_budget_are_per_transport_unless_shared() -> None:
    """Transports share the process's gate and budget unless given their own, or None."""
    gate, budget = HostGate(), RetryBudget()
    first, second = RetryTransport(), RetryTransport()
    assert first.retrier.gate is second.retrier.gate is forbear.process_gate()
    assert first.retrier.budget is second.retrier.budget is forbear.process_budget()
    shared = [RetryTransport(gate=gate, budget=budget) for _ in range(2)]
    assert all(t.retrier.gate is gate and t.retrier.budget is budget for t in shared)
    assert RetryTransport(gate=None, budget=None).retrier.gate is None
