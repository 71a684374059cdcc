"""With `RetryTransport` mounted, httpx does what it does without it, where forbear has no say.

Each case runs the same request through a plain client (its own `httpx.HTTPTransport` /
`httpx.AsyncHTTPTransport`) and through one whose transport is `RetryTransport` around the same
kind of transport, against the same real server, and compares what the caller and the server
see: redirects and their history, cookies, auth flows, streaming, event hooks, timeouts and
exception types, connection reuse and closing. Every case runs on `httpx.Client` and on
`httpx.AsyncClient` under asyncio and trio; each is written once, against `Http`, which puts
both kinds of client behind the same async methods.
"""

from __future__ import annotations

import contextlib
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from forbear import Backoff, Jitter, Policy
from forbear_httpx import RetryTransport
from forbear_testing import FaultServer, RawFaults, RawMode, Reply

pytestmark = pytest.mark.anyio

EXACT = Backoff(initial=0.01, jitter=Jitter.NONE)
POLICY = Policy(backoff=EXACT)
SIDES = ("sync", "asyncio", "trio")
#: httpx on trio leaves its body generators to the garbage collector when a body is closed
#: unfinished or fails to decode, and trio warns about each: plain httpx does it the same way.
TRIO_ASYNCGEN_WARNING = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator:pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest) -> str:
    """``sync``: `httpx.Client`; ``asyncio``/``trio``: `httpx.AsyncClient` on that loop."""
    return str(request.param)


@pytest.fixture
def anyio_backend(side: str) -> str:
    """A sync client runs once, inside asyncio; an async one on its own loop."""
    return "asyncio" if side == "sync" else side


class Http:
    """One httpx client, sync or async, plain or with `RetryTransport`, behind async methods.

    ``limits`` go on the inner transport (httpx ignores a client's limits when it is given a
    transport); every other keyword goes to the client.
    """

    def __init__(
        self,
        side: str,
        mounted: bool,
        *,
        limits: httpx.Limits | None = None,
        policy: Policy = POLICY,
        **options: Any,
    ) -> None:
        self.sync = side == "sync"
        self.mounted = mounted
        limits = limits or httpx.Limits()
        self.client: httpx.Client | httpx.AsyncClient
        if self.sync:
            inner: httpx.BaseTransport = httpx.HTTPTransport(limits=limits)
            sync_transport = RetryTransport(inner, policy=policy) if mounted else inner
            self.client = httpx.Client(transport=sync_transport, **options)
        else:
            ainner: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(limits=limits)
            async_transport = RetryTransport(ainner, policy=policy) if mounted else ainner
            self.client = httpx.AsyncClient(transport=async_transport, **options)

    @property
    def name(self) -> str:
        return "forbear" if self.mounted else "plain"

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A request, body read (``client.request``)."""
        if isinstance(self.client, httpx.Client):
            return self.client.request(method, url, **kwargs)
        return await self.client.request(method, url, **kwargs)

    def build(self, method: str, url: str, **kwargs: Any) -> httpx.Request:
        return self.client.build_request(method, url, **kwargs)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if isinstance(self.client, httpx.Client):
            return self.client.send(request, **kwargs)
        return await self.client.send(request, **kwargs)

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """``client.stream(...)``: the response unread, closed when the block ends."""
        if isinstance(self.client, httpx.Client):
            with self.client.stream(method, url, **kwargs) as response:
                yield response
        else:
            async with self.client.stream(method, url, **kwargs) as response:
                yield response

    async def read(self, response: httpx.Response) -> bytes:
        return response.read() if self.sync else await response.aread()

    async def chunks(self, response: httpx.Response, *, raw: bool = False) -> list[bytes]:
        """Every chunk ``iter_bytes`` (``iter_raw`` with ``raw``) gives."""
        if self.sync:
            return list(response.iter_raw() if raw else response.iter_bytes())
        return [chunk async for chunk in (response.aiter_raw() if raw else response.aiter_bytes())]

    async def first_chunk(self, response: httpx.Response) -> bytes:
        if self.sync:
            return next(iter(response.iter_raw()))
        async for chunk in response.aiter_raw():
            return chunk
        return b""

    async def close_response(self, response: httpx.Response) -> None:
        if self.sync:
            response.close()
        else:
            await response.aclose()

    def hook(self, body: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Any]:
        """An event hook of the client's kind around the async ``body``."""
        if not self.sync:
            return body

        def run(item: Any) -> None:
            coroutine = body(item)
            try:
                coroutine.send(None)  # type: ignore[attr-defined]
            except StopIteration:
                return
            raise RuntimeError("a sync hook awaited something that suspends")

        return run

    async def close(self) -> None:
        if isinstance(self.client, httpx.Client):
            self.client.close()
        else:
            await self.client.aclose()


@contextlib.asynccontextmanager
async def opened(side: str, mounted: bool, **options: Any) -> AsyncIterator[Http]:
    http = Http(side, mounted, **options)
    try:
        yield http
    finally:
        await http.close()


Case = Callable[[Http], Awaitable[Any]]


async def both(side: str, case: Case, reset: Callable[[], None], **options: Any) -> Any:
    """``case`` run through a plain client, then a mounted one: what each saw must be equal.

    ``reset`` sets the servers up afresh before each run. Returns the plain client's view.
    """
    seen = {}
    for mounted in (False, True):
        reset()
        async with opened(side, mounted, **options) as http:
            seen[http.name] = await case(http)
    assert seen["forbear"] == seen["plain"]
    return seen["plain"]


def arrived(server: FaultServer, *headers: str) -> list[tuple[Any, ...]]:
    """(method, path, body, the named headers) of every arrival, in order."""
    return [
        (a.method, a.path, a.body, *(a.header(name) for name in headers)) for a in server.arrivals()
    ]


@dataclass(frozen=True)
class Raised:
    """An exception as the caller sees it: its type, message and the request it names."""

    kind: type[BaseException]
    message: str
    method: str | None = None
    url: str | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Raised:
        request = None
        if isinstance(exc, httpx.RequestError):
            with contextlib.suppress(RuntimeError):
                request = exc.request
        return cls(
            type(exc),
            str(exc),
            None if request is None else request.method,
            None if request is None else str(request.url),
        )


def _moved(status: int, to: str, **headers: str) -> Reply:
    return Reply(status, headers={"Location": to, **headers}, body=f"moved {status}".encode())


# -- redirects and history --------------------------------------------------------------------


async def test_redirect_chain_methods_bodies_and_history(
    side: str, fault_server: FaultServer
) -> None:
    """301/302/303 turn a POST into a bodyless GET, 307/308 keep it; history lists every hop."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/a", [_moved(307, "/b")])
        fault_server.script("/b", [_moved(308, "/c")])
        fault_server.script("/c", [_moved(302, "/d")])
        fault_server.script("/d", [_moved(301, "/e")])
        fault_server.script("/e", [_moved(303, "/f")])
        fault_server.script("/f", [Reply(200, body=b"landed")])

    async def case(http: Http) -> Any:
        response = await http.request(
            "POST", fault_server.url + "/a", content=b"order-1", follow_redirects=True
        )
        history = [(r.status_code, r.url.path, r.content, r.is_closed) for r in response.history]
        return (
            response.status_code,
            response.url.path,
            response.content,
            response.request.method,
            history,
            arrived(fault_server, "content-length"),
        )

    seen = await both(side, case, reset)
    assert seen[:4] == (200, "/f", b"landed", "GET")
    assert [hop[:2] for hop in seen[4]] == [
        (307, "/a"),
        (308, "/b"),
        (302, "/c"),
        (301, "/d"),
        (303, "/e"),
    ]
    assert [(m, p, b) for m, p, b, _ in seen[5]] == [
        ("POST", "/a", b"order-1"),
        ("POST", "/b", b"order-1"),
        ("POST", "/c", b"order-1"),
        ("GET", "/d", b""),
        ("GET", "/e", b""),
        ("GET", "/f", b""),
    ]


async def test_redirect_not_followed(side: str, fault_server: FaultServer) -> None:
    """Without follow_redirects the 302 itself is returned, with ``next_request`` set."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/stay", [_moved(302, "/elsewhere")])

    async def case(http: Http) -> Any:
        response = await http.request("GET", fault_server.url + "/stay")
        following = response.next_request
        assert following is not None
        return (
            response.status_code,
            response.content,
            response.has_redirect_location,
            following.url.path,
            response.history,
            len(fault_server.arrivals()),
        )

    assert await both(side, case, reset) == (302, b"moved 302", True, "/elsewhere", [], 1)


async def test_too_many_redirects(side: str, fault_server: FaultServer) -> None:
    """A redirect loop raises httpx's TooManyRedirects after ``max_redirects`` hops."""

    def reset() -> None:
        fault_server.reset()
        fault_server.always("/loop", _moved(302, "/loop"))

    async def case(http: Http) -> Any:
        with pytest.raises(httpx.TooManyRedirects) as caught:
            await http.request("GET", fault_server.url + "/loop", follow_redirects=True)
        return Raised.of(caught.value), len(fault_server.arrivals())

    raised, count = await both(side, case, reset, max_redirects=3)
    assert (raised.kind, count) == (httpx.TooManyRedirects, 4)


@TRIO_ASYNCGEN_WARNING
async def test_redirect_with_invalid_gzip_body(side: str, fault_server: FaultServer) -> None:
    """httpx reads a redirect's body before following it: invalid gzip there is its own error."""

    def reset() -> None:
        fault_server.reset()
        bad = {"Location": "/landing", "Content-Encoding": "gzip"}
        fault_server.script("/moved", [Reply(302, headers=bad, body=b"this is not gzip")])

    async def case(http: Http) -> Any:
        try:
            response = await http.request("GET", fault_server.url + "/moved", follow_redirects=True)
        except httpx.HTTPError as exc:
            return Raised.of(exc), arrived(fault_server)
        return response.status_code, arrived(fault_server)

    outcome, arrivals = await both(side, case, reset)
    assert isinstance(outcome, Raised) and outcome.kind is httpx.DecodingError
    assert arrivals == [("GET", "/moved", b"")]


# -- cookies -----------------------------------------------------------------------------------


async def test_cookies_from_redirects_and_responses(side: str, fault_server: FaultServer) -> None:
    """Cookies set by a redirect hop and by a final response are stored and sent back."""

    def reset() -> None:
        fault_server.reset()
        login = _moved(302, "/home", **{"Set-Cookie": "session=abc; Path=/"})
        fault_server.script("/login", [login])
        fault_server.script("/home", [Reply(200, headers={"Set-Cookie": "seen=1; Path=/"})])

    async def case(http: Http) -> Any:
        await http.request("GET", fault_server.url + "/login", follow_redirects=True)
        await http.request("GET", fault_server.url + "/again", cookies=None)
        return dict(http.client.cookies), arrived(fault_server, "cookie")

    jar, arrivals = await both(side, case, reset)
    assert jar == {"session": "abc", "seen": "1"}
    assert [(path, cookie) for _, path, _, cookie in arrivals] == [
        ("/login", None),
        ("/home", "session=abc"),
        ("/again", "session=abc; seen=1"),
    ]


# -- auth flows --------------------------------------------------------------------------------


async def test_basic_auth(side: str, fault_server: FaultServer) -> None:
    """``auth=(user, password)`` sends Basic credentials; a 401 with them is returned as it is."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/private", [Reply(200), Reply(401, body=b"wrong password")])

    async def case(http: Http) -> Any:
        first = await http.request("GET", fault_server.url + "/private", auth=("ann", "pw"))
        second = await http.request("GET", fault_server.url + "/private", auth=("ann", "bad"))
        return (
            (first.status_code, second.status_code, second.content),
            arrived(fault_server, "authorization"),
        )

    statuses, arrivals = await both(side, case, reset)
    assert statuses == (200, 401, b"wrong password")
    assert [auth for *_, auth in arrivals] == ["Basic YW5uOnB3", "Basic YW5uOmJhZA=="]


async def test_digest_auth_challenge(side: str, fault_server: FaultServer) -> None:
    """httpx's DigestAuth answers the 401 challenge itself: two sends, the second signed."""

    def reset() -> None:
        fault_server.reset()
        challenge = {"WWW-Authenticate": 'Digest realm="api", nonce="n0nce", qop="auth"'}
        fault_server.script("/digest", [Reply(401, headers=challenge), Reply(200, body=b"in")])

    async def case(http: Http) -> Any:
        auth = httpx.DigestAuth("ann", "pw")
        response = await http.request("GET", fault_server.url + "/digest", auth=auth)
        arrivals = arrived(fault_server, "authorization")
        schemes = [auth and auth.split()[0] for *_, auth in arrivals]
        return response.status_code, response.content, len(response.history), schemes

    assert await both(side, case, reset) == (200, b"in", 1, [None, "Digest"])


class RiddleAuth(httpx.Auth):
    """An auth flow that reads the 401's body and answers it in a header."""

    requires_response_body = True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code == 401:
            request.headers["X-Answer"] = response.text.upper()
            yield request


async def test_auth_flow_reading_the_response_body(side: str, fault_server: FaultServer) -> None:
    """An auth flow that needs the 401's body gets it, and its re-send goes out once."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/riddle", [Reply(401, body=b"riddle-42"), Reply(200, body=b"ok")])

    async def case(http: Http) -> Any:
        response = await http.request("GET", fault_server.url + "/riddle", auth=RiddleAuth())
        return response.status_code, arrived(fault_server, "x-answer")

    status, arrivals = await both(side, case, reset)
    assert status == 200
    assert [answer for *_, answer in arrivals] == [None, "RIDDLE-42"]


# -- streaming ---------------------------------------------------------------------------------


async def test_streamed_body_arrives_in_chunks(side: str, fault_server: FaultServer) -> None:
    """``client.stream`` leaves the body unread until iterated, then yields all of it."""
    size = 1_000_000

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/big", [Reply(200, body_size=size, chunk_size=65536)])

    async def case(http: Http) -> Any:
        async with http.stream("GET", fault_server.url + "/big") as response:
            before = (response.is_stream_consumed, response.is_closed)
            chunks = await http.chunks(response)
            after = (response.is_stream_consumed, response.num_bytes_downloaded)
        return before, sum(map(len, chunks)), after, response.is_closed

    assert await both(side, case, reset) == ((False, False), size, (True, size), True)


async def test_streamed_gzip_raw_and_decoded(side: str, fault_server: FaultServer) -> None:
    """``iter_raw`` gives the gzip bytes as sent, ``iter_bytes`` the decoded body."""
    text = b"forbear " * 5000
    packed = gzip.compress(text)

    def reset() -> None:
        fault_server.reset()
        headers = {"Content-Encoding": "gzip"}
        fault_server.script("/packed", [Reply(200, headers=headers, body=packed)] * 2)

    async def case(http: Http) -> Any:
        url = fault_server.url + "/packed"
        async with http.stream("GET", url) as response:
            raw = b"".join(await http.chunks(response, raw=True))
        async with http.stream("GET", url) as response:
            decoded = b"".join(await http.chunks(response))
        return raw, decoded

    assert await both(side, case, reset) == (packed, text)


async def test_streamed_request_body_sent_once(side: str, fault_server: FaultServer) -> None:
    """A generator request body is streamed to the server whole, once."""

    def reset() -> None:
        fault_server.reset()

    async def case(http: Http) -> Any:
        parts = [b"one|", b"two|", b"three"]
        body: Any
        if http.sync:
            body = iter(parts)
        else:

            async def agen() -> AsyncIterator[bytes]:
                for part in parts:
                    yield part

            body = agen()
        response = await http.request("PUT", fault_server.url + "/upload", content=body)
        return response.status_code, arrived(fault_server, "transfer-encoding")

    assert await both(side, case, reset) == (200, [("PUT", "/upload", b"one|two|three", "chunked")])


# -- event hooks -------------------------------------------------------------------------------


async def test_event_hooks_see_each_hop_once(side: str, fault_server: FaultServer) -> None:
    """Request hooks may add headers; response hooks may read the body; once per hop."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/hop", [_moved(302, "/end")])
        fault_server.script("/end", [Reply(200, body=b"the end")])

    async def case(http: Http) -> Any:
        log: list[tuple[Any, ...]] = []

        async def on_request(request: httpx.Request) -> None:
            request.headers["X-Hooked"] = request.url.path
            log.append(("request", request.method, request.url.path))

        async def on_response(response: httpx.Response) -> None:
            body = await http.read(response)
            log.append(("response", response.status_code, body, response.request.url.path))

        hooks = {"request": [http.hook(on_request)], "response": [http.hook(on_response)]}
        http.client.event_hooks = hooks
        response = await http.request("GET", fault_server.url + "/hop", follow_redirects=True)
        return response.content, log, arrived(fault_server, "x-hooked")

    body, log, arrivals = await both(side, case, reset)
    assert body == b"the end"
    assert log == [
        ("request", "GET", "/hop"),
        ("response", 302, b"moved 302", "/hop"),
        ("request", "GET", "/end"),
        ("response", 200, b"the end", "/end"),
    ]
    assert [hooked for *_, hooked in arrivals] == ["/hop", "/end"]


async def test_response_hook_raising(side: str, fault_server: FaultServer) -> None:
    """A response hook's ``raise_for_status`` raises HTTPStatusError to the caller, once."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/missing", [Reply(404, body=b"no such thing")])

    async def case(http: Http) -> Any:
        async def check(response: httpx.Response) -> None:
            response.raise_for_status()

        http.client.event_hooks = {"response": [http.hook(check)]}
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await http.request("GET", fault_server.url + "/missing")
        return type(caught.value), caught.value.response.status_code, len(fault_server.arrivals())

    assert await both(side, case, reset) == (httpx.HTTPStatusError, 404, 1)


# -- timeouts and exception types --------------------------------------------------------------


async def test_read_timeout_type_and_request(side: str, raw_faults: RawFaults) -> None:
    """A POST meeting a read timeout raises ReadTimeout naming the caller's request, once."""

    def reset() -> None:
        raw_faults.reset()
        raw_faults.mode = RawMode.NEVER_ANSWER

    async def case(http: Http) -> Any:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout) as caught:
            await http.request("POST", raw_faults.url + "/silent", content=b"x", timeout=0.2)
        elapsed = time.monotonic() - started
        return Raised.of(caught.value), len(raw_faults.arrivals()), elapsed < 1.0

    raised, count, prompt = await both(side, case, reset, timeout=5.0)
    assert (raised.kind, raised.method, count, prompt) == (httpx.ReadTimeout, "POST", 1, True)


async def test_pool_timeout(side: str, fault_server: FaultServer) -> None:
    """A pool of one held by an open stream: the next request raises PoolTimeout, unsent."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/held", [Reply(200, body_size=1_000_000)])

    async def case(http: Http) -> Any:
        async with http.stream("GET", fault_server.url + "/held") as held:
            with pytest.raises(httpx.PoolTimeout) as caught:
                await http.request("GET", fault_server.url + "/queued")
            assert not held.is_closed
        return type(caught.value), [a.path for a in fault_server.arrivals()]

    limits = httpx.Limits(max_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.1)
    seen = await both(side, case, reset, limits=limits, timeout=timeout)
    assert seen == (httpx.PoolTimeout, ["/held"])


async def test_half_response_is_remote_protocol_error(side: str, raw_faults: RawFaults) -> None:
    """A body cut short: the response is returned, reading it raises RemoteProtocolError."""

    def reset() -> None:
        raw_faults.reset()
        raw_faults.mode = RawMode.HALF_RESPONSE

    async def case(http: Http) -> Any:
        async with http.stream("GET", raw_faults.url + "/half") as response:
            status = response.status_code
            with pytest.raises(httpx.RemoteProtocolError) as caught:
                await http.read(response)
        return status, type(caught.value), len(raw_faults.arrivals())

    assert await both(side, case, reset) == (200, httpx.RemoteProtocolError, 1)


@TRIO_ASYNCGEN_WARNING
async def test_invalid_gzip_on_a_final_200(side: str, fault_server: FaultServer) -> None:
    """A 200 whose gzip body is invalid raises DecodingError when read, sent once."""

    def reset() -> None:
        fault_server.reset()
        bad = {"Content-Encoding": "gzip"}
        fault_server.script("/garbled", [Reply(200, headers=bad, body=b"this is not gzip")])

    async def case(http: Http) -> Any:
        with pytest.raises(httpx.DecodingError) as caught:
            await http.request("GET", fault_server.url + "/garbled")
        return type(caught.value), len(fault_server.arrivals())

    assert await both(side, case, reset) == (httpx.DecodingError, 1)


async def test_unsupported_protocol(side: str, fault_server: FaultServer) -> None:
    """A URL httpx cannot send raises UnsupportedProtocol as it is, unsent."""

    async def case(http: Http) -> Any:
        with pytest.raises(httpx.UnsupportedProtocol) as caught:
            await http.request("GET", "ftp://127.0.0.1/file")
        return Raised.of(caught.value)

    raised = await both(side, case, fault_server.reset)
    assert raised.kind is httpx.UnsupportedProtocol


async def test_connect_error_type(side: str, refused_port: int) -> None:
    """A refused connection raises ConnectError naming the caller's request (forbear: after
    its retries, which never reached a server)."""

    async def case(http: Http) -> Any:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.request("GET", f"http://127.0.0.1:{refused_port}/nothing")
        return Raised.of(caught.value)

    raised = await both(side, case, lambda: None)
    assert (raised.kind, raised.method) == (httpx.ConnectError, "GET")


# -- connections and closing -------------------------------------------------------------------


def _local_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


@TRIO_ASYNCGEN_WARNING
async def test_connection_reused_and_dropped_like_plain(
    side: str, fault_server: FaultServer
) -> None:
    """Read responses give their connection back; one closed mid-body does not."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/partial", [Reply(200, body_size=2_000_000)])

    async def case(http: Http) -> Any:
        ports = []
        for _ in range(3):
            async with http.stream("GET", fault_server.url + "/whole") as response:
                ports.append(_local_port(response))
                await http.read(response)
        async with http.stream("GET", fault_server.url + "/partial") as response:
            ports.append(_local_port(response))
            await http.first_chunk(response)
            await http.close_response(response)
            closed = response.is_closed
        async with http.stream("GET", fault_server.url + "/whole") as response:
            ports.append(_local_port(response))
            await http.read(response)
        reuse = [port == ports[0] for port in ports]
        return closed, reuse

    closed, reuse = await both(side, case, reset)
    assert closed
    assert reuse == [True, True, True, True, False]


async def test_closed_client_refuses_to_send(side: str, fault_server: FaultServer) -> None:
    """After ``close()`` the client raises httpx's RuntimeError; nothing more arrives."""

    async def case(http: Http) -> Any:
        await http.request("GET", fault_server.url + "/before")
        await http.close()
        with pytest.raises(RuntimeError) as caught:
            await http.request("GET", fault_server.url + "/after")
        return str(caught.value), [a.path for a in fault_server.arrivals()], http.client.is_closed

    message, paths, is_closed = await both(side, case, fault_server.reset)
    assert "closed" in message and paths == ["/before"] and is_closed


def test_client_close_closes_the_wrapped_pool(fault_server: FaultServer) -> None:
    """Closing the client closes the transport forbear wraps: its pool holds no connection."""
    inner = httpx.HTTPTransport()
    with httpx.Client(transport=RetryTransport(inner, policy=POLICY)) as client:
        client.get(fault_server.url + "/open")
        assert len(inner._pool.connections) == 1
    assert inner._pool.connections == []


# -- the client's timeout and forbear's deadline ------------------------------------------------


async def test_timeout_bounds_each_attempt_not_the_call(side: str, raw_faults: RawFaults) -> None:
    """``timeout=`` bounds one attempt: a server that never answers costs one per attempt."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    policy = Policy(max_attempts=3, backoff=EXACT)
    async with opened(side, True, policy=policy, timeout=0.2) as http:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await http.request("GET", raw_faults.url + "/silent")
        elapsed = time.monotonic() - started
    assert len(raw_faults.arrivals()) == 3
    assert 3 * 0.2 <= elapsed < 3 * 0.2 + 1.0


async def test_deadline_bounds_the_whole_call(side: str, raw_faults: RawFaults) -> None:
    """``Policy(deadline=)`` stops further attempts: the call ends within deadline + one timeout."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    policy = Policy(max_attempts=50, deadline=0.5, backoff=EXACT)
    async with opened(side, True, policy=policy, timeout=0.2) as http:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout) as caught:
            await http.request("GET", raw_faults.url + "/silent")
        elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 0.2 + 0.5
    assert 2 <= len(raw_faults.arrivals()) <= 4
    assert "deadline" in getattr(caught.value, "__notes__", [""])[0]
