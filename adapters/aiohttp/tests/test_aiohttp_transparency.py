"""With `RetryMiddleware` mounted, aiohttp does what it does without it, where forbear has no say.

Each case runs the same request through a plain ``aiohttp.ClientSession`` and through one with
`RetryMiddleware` in its middlewares, against the same real server, and compares what the
caller and the server see: redirects and their history, cookies, auth (``BasicAuth`` and
aiohttp's ``DigestAuthMiddleware`` on either side of forbear), streaming, trace configs,
timeouts and exception types, connection reuse and closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientMiddlewareType

from forbear import Backoff, Jitter, Policy
from forbear_aiohttp import RetryMiddleware
from forbear_testing import FaultServer, RawFaults, RawMode, Reply

pytestmark = pytest.mark.anyio

POLICY = Policy(backoff=Backoff(initial=0.01, jitter=Jitter.NONE))

#: Builds a session's middleware list: given forbear's middleware, or None for a plain session.
Chain = Callable[[RetryMiddleware | None], Sequence[ClientMiddlewareType]]


def forbear_only(retry: RetryMiddleware | None) -> Sequence[ClientMiddlewareType]:
    return () if retry is None else (retry,)


@contextlib.asynccontextmanager
async def opened(
    mounted: bool, chain: Chain = forbear_only, **options: Any
) -> AsyncIterator[aiohttp.ClientSession]:
    """A session, plain or with forbear; cookies kept for IP hosts (loopback) too."""
    retry = RetryMiddleware(policy=POLICY) if mounted else None
    options.setdefault("cookie_jar", aiohttp.CookieJar(unsafe=True))
    async with aiohttp.ClientSession(middlewares=tuple(chain(retry)), **options) as session:
        yield session


Case = Callable[[aiohttp.ClientSession], Awaitable[Any]]


async def both(
    case: Case, reset: Callable[[], None], chain: Chain = forbear_only, **options: Any
) -> Any:
    """``case`` run through a plain session, then a mounted one: what each saw must be equal.

    ``reset`` sets the servers up afresh before each run. Returns the plain session's view.
    """
    seen = {}
    for mounted in (False, True):
        reset()
        async with opened(mounted, chain, **options) as session:
            seen[mounted] = await case(session)
    assert seen[True] == seen[False]
    return seen[False]


def arrived(server: FaultServer, *headers: str) -> list[tuple[Any, ...]]:
    """(method, path, body, the named headers) of every arrival, in order."""
    return [
        (a.method, a.path, a.body, *(a.header(name) for name in headers)) for a in server.arrivals()
    ]


def _moved(status: int, to: str, **headers: str) -> Reply:
    return Reply(status, headers={"Location": to, **headers}, body=f"moved {status}".encode())


# -- redirects and history --------------------------------------------------------------------


async def test_redirect_chain_methods_bodies_and_history(fault_server: FaultServer) -> None:
    """301/302/303 turn a POST into a bodyless GET, 307/308 keep it; history lists every hop."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/a", [_moved(307, "/b")])
        fault_server.script("/b", [_moved(308, "/c")])
        fault_server.script("/c", [_moved(302, "/d")])
        fault_server.script("/d", [_moved(301, "/e")])
        fault_server.script("/e", [_moved(303, "/f")])
        fault_server.script("/f", [Reply(200, body=b"landed")])

    async def case(session: aiohttp.ClientSession) -> Any:
        async with session.post(fault_server.url + "/a", data=b"order-1") as response:
            body = await response.read()
            history = [(r.status, r.url.path, r.method) for r in response.history]
            return (
                response.status,
                response.url.path,
                body,
                response.method,
                history,
                arrived(fault_server),
            )

    seen = await both(case, reset)
    assert seen[:4] == (200, "/f", b"landed", "GET")
    assert [hop[:2] for hop in seen[4]] == [
        (307, "/a"),
        (308, "/b"),
        (302, "/c"),
        (301, "/d"),
        (303, "/e"),
    ]
    assert seen[5] == [
        ("POST", "/a", b"order-1"),
        ("POST", "/b", b"order-1"),
        ("POST", "/c", b"order-1"),
        ("GET", "/d", b""),
        ("GET", "/e", b""),
        ("GET", "/f", b""),
    ]


async def test_redirect_not_followed(fault_server: FaultServer) -> None:
    """With ``allow_redirects=False`` the 302 itself is returned, body and all."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/stay", [_moved(302, "/elsewhere")])

    async def case(session: aiohttp.ClientSession) -> Any:
        async with session.get(fault_server.url + "/stay", allow_redirects=False) as response:
            location = response.headers["Location"]
            body = await response.read()
            return response.status, location, body, response.history, len(fault_server.arrivals())

    assert await both(case, reset) == (302, "/elsewhere", b"moved 302", (), 1)


async def test_too_many_redirects(fault_server: FaultServer) -> None:
    """A redirect loop raises aiohttp's TooManyRedirects after ``max_redirects`` hops."""

    def reset() -> None:
        fault_server.reset()
        fault_server.always("/loop", _moved(302, "/loop"))

    async def case(session: aiohttp.ClientSession) -> Any:
        with pytest.raises(aiohttp.TooManyRedirects) as caught:
            async with session.get(fault_server.url + "/loop", max_redirects=3):
                pass
        hops = [r.status for r in caught.value.history]
        return type(caught.value), hops, len(fault_server.arrivals())

    assert await both(case, reset) == (aiohttp.TooManyRedirects, [302, 302, 302], 3)


async def test_redirect_with_invalid_gzip_body(fault_server: FaultServer) -> None:
    """A 302 whose body is not valid gzip is followed, its body never decoded."""

    def reset() -> None:
        fault_server.reset()
        bad = {"Location": "/landing", "Content-Encoding": "gzip"}
        fault_server.script("/moved", [Reply(302, headers=bad, body=b"this is not gzip")])

    async def case(session: aiohttp.ClientSession) -> Any:
        async with session.get(fault_server.url + "/moved") as response:
            return response.status, await response.read(), arrived(fault_server)

    assert await both(case, reset) == (
        200,
        b"ok",
        [("GET", "/moved", b""), ("GET", "/landing", b"")],
    )


# -- cookies -----------------------------------------------------------------------------------


async def test_cookies_from_redirects_and_responses(fault_server: FaultServer) -> None:
    """Cookies set by a redirect hop and by a final response are stored and sent back."""

    def reset() -> None:
        fault_server.reset()
        login = _moved(302, "/home", **{"Set-Cookie": "session=abc; Path=/"})
        fault_server.script("/login", [login])
        fault_server.script("/home", [Reply(200, headers={"Set-Cookie": "seen=1; Path=/"})])

    async def case(session: aiohttp.ClientSession) -> Any:
        async with session.get(fault_server.url + "/login") as response:
            await response.read()
        async with session.get(fault_server.url + "/again") as response:
            await response.read()
        jar = sorted((cookie.key, cookie.value) for cookie in session.cookie_jar)
        return jar, [(path, cookie) for _, path, _, cookie in arrived(fault_server, "cookie")]

    jar, sent = await both(case, reset)
    assert jar == [("seen", "1"), ("session", "abc")]
    assert [(path, cookie and sorted(cookie.split("; "))) for path, cookie in sent] == [
        ("/login", None),
        ("/home", ["session=abc"]),
        ("/again", ["seen=1", "session=abc"]),
    ]


# -- auth --------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*(BasicAuth|auth. parameter) is deprecated:DeprecationWarning")
async def test_basic_auth_and_its_redirect_to_another_host(fault_server: FaultServer) -> None:
    """BasicAuth is sent; a 401 with it is returned as it is; a hop to another host drops it."""
    port = fault_server.url.rsplit(":", 1)[1]

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/private", [Reply(200), Reply(401, body=b"wrong password")])
        fault_server.script("/away", [_moved(302, f"http://localhost:{port}/landing")])

    async def case(session: aiohttp.ClientSession) -> Any:
        statuses = []
        for password in ("pw", "bad"):
            auth = aiohttp.BasicAuth("ann", password)
            async with session.get(fault_server.url + "/private", auth=auth) as response:
                statuses.append((response.status, await response.read()))
        auth = aiohttp.BasicAuth("ann", "pw")
        async with session.get(fault_server.url + "/away", auth=auth) as response:
            statuses.append((response.status, await response.read()))
        return statuses, [
            (path, auth) for _, path, _, auth in arrived(fault_server, "authorization")
        ]

    statuses, sent = await both(case, reset)
    assert statuses == [(200, b""), (401, b"wrong password"), (200, b"ok")]
    assert sent == [
        ("/private", "Basic YW5uOnB3"),
        ("/private", "Basic YW5uOmJhZA=="),
        ("/away", "Basic YW5uOnB3"),
        ("/landing", None),
    ]


def digest_outside(retry: RetryMiddleware | None) -> Sequence[ClientMiddlewareType]:
    digest = aiohttp.DigestAuthMiddleware("ann", "pw")
    return (digest,) if retry is None else (digest, retry)


def digest_inside(retry: RetryMiddleware | None) -> Sequence[ClientMiddlewareType]:
    digest = aiohttp.DigestAuthMiddleware("ann", "pw")
    return (digest,) if retry is None else (retry, digest)


@pytest.mark.parametrize(
    "chain", [digest_outside, digest_inside], ids=["digest-first", "forbear-first"]
)
async def test_digest_auth_middleware(chain: Chain, fault_server: FaultServer) -> None:
    """aiohttp's DigestAuthMiddleware answers the 401 challenge, before or after forbear."""

    def reset() -> None:
        fault_server.reset()
        challenge = {"WWW-Authenticate": 'Digest realm="api", nonce="n0nce", qop="auth"'}
        fault_server.script("/digest", [Reply(401, headers=challenge), Reply(200, body=b"in")])

    async def case(session: aiohttp.ClientSession) -> Any:
        async with session.get(fault_server.url + "/digest") as response:
            body = await response.read()
        schemes = [auth and auth.split()[0] for *_, auth in arrived(fault_server, "authorization")]
        return response.status, body, schemes

    assert await both(case, reset, chain) == (200, b"in", [None, "Digest"])


# -- streaming ---------------------------------------------------------------------------------


async def test_streamed_body_in_chunks(fault_server: FaultServer) -> None:
    """``response.content`` yields the whole body chunk by chunk, unread until then."""
    size = 1_000_000

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/big", [Reply(200, body_size=size)] * 2)

    async def case(session: aiohttp.ClientSession) -> Any:
        totals: list[int | bool] = []
        async with session.get(fault_server.url + "/big") as response:
            totals.append(response.content.is_eof())
            totals.append(sum([len(chunk) async for chunk in response.content.iter_chunked(4096)]))
            totals.append(response.content.is_eof())
        async with session.get(fault_server.url + "/big") as response:
            totals.append(sum([len(chunk) async for chunk in response.content.iter_any()]))
        return totals

    assert await both(case, reset) == [False, size, True, size]


@pytest.mark.parametrize("decompress", [True, False], ids=["auto-decompress", "raw"])
async def test_gzip_body(decompress: bool, fault_server: FaultServer) -> None:
    """A gzip body is decoded, or handed over as sent with ``auto_decompress=False``."""
    text = b"forbear " * 5000
    packed = gzip.compress(text)

    def reset() -> None:
        fault_server.reset()
        fault_server.script(
            "/packed", [Reply(200, headers={"Content-Encoding": "gzip"}, body=packed)]
        )

    async def case(session: aiohttp.ClientSession) -> Any:
        async with session.get(fault_server.url + "/packed") as response:
            return b"".join([chunk async for chunk in response.content.iter_chunked(1000)])

    assert await both(case, reset, auto_decompress=decompress) == (text if decompress else packed)


async def test_streamed_request_body_sent_once(fault_server: FaultServer) -> None:
    """An async generator request body is streamed to the server whole, once."""

    async def case(session: aiohttp.ClientSession) -> Any:
        async def body() -> AsyncIterator[bytes]:
            for part in (b"one|", b"two|", b"three"):
                yield part

        async with session.put(fault_server.url + "/upload", data=body()) as response:
            await response.read()
            return response.status, arrived(fault_server, "transfer-encoding")

    assert await both(case, fault_server.reset) == (
        200,
        [("PUT", "/upload", b"one|two|three", "chunked")],
    )


# -- trace configs -----------------------------------------------------------------------------

SIGNALS = (
    "on_request_start",
    "on_request_redirect",
    "on_request_end",
    "on_request_exception",
    "on_request_headers_sent",
    "on_request_chunk_sent",
    "on_response_chunk_received",
    "on_connection_queued_start",
    "on_connection_queued_end",
    "on_connection_create_start",
    "on_connection_create_end",
    "on_connection_reuseconn",
)


def tracing(log: list[tuple[Any, ...]]) -> aiohttp.TraceConfig:
    """A trace config that logs every signal with what identifies the request."""
    config = aiohttp.TraceConfig()
    for name in SIGNALS:

        async def record(
            session: aiohttp.ClientSession, context: Any, params: Any, name: str = name
        ) -> None:
            url = getattr(params, "url", None)
            response = getattr(params, "response", None)
            status = None if response is None else response.status
            kind = getattr(params, "exception", None)
            log.append(
                (
                    name,
                    getattr(params, "method", None),
                    None if url is None else url.path,
                    status,
                    type(kind).__name__ if kind is not None else None,
                    getattr(context, "trace_request_ctx", None),
                )
            )

        getattr(config, name).append(record)
    return config


def _connection_agnostic(entry: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """A new connection and a reused one read alike: whether aiohttp reuses a redirect's
    connection depends on whether its body had arrived when it released it, a race of its own
    (`test_connection_reused_and_dropped_like_plain` compares reuse where it is certain)."""
    name = entry[0]
    if name == "on_connection_create_start":
        return None
    if name in ("on_connection_create_end", "on_connection_reuseconn"):
        return ("connection", *entry[1:])
    return entry


async def test_trace_configs_see_the_same_signals(
    fault_server: FaultServer, raw_faults: RawFaults
) -> None:
    """Trace configs get the same signals, in the same order, for hops, reuse and a failure."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    log: list[tuple[Any, ...]] = []

    def reset() -> None:
        fault_server.reset()
        raw_faults.reset()
        raw_faults.mode = RawMode.RESET_AFTER_REQUEST
        log.clear()
        fault_server.script("/hop", [_moved(302, "/end")])

    async def case(session: aiohttp.ClientSession) -> Any:
        async with session.post(
            fault_server.url + "/hop", data=b"payload", trace_request_ctx={"n": 1}
        ) as response:
            await response.read()
        async with session.get(fault_server.url + "/again") as response:
            await response.read()
        with pytest.raises(aiohttp.ClientError) as caught:
            async with session.post(raw_faults.url + "/reset", data=b"x"):
                pass
        signals = [_connection_agnostic(entry) for entry in log]
        return [entry for entry in signals if entry is not None], type(caught.value)

    config = tracing(log)
    signals, raised = await both(case, reset, trace_configs=[config])
    names = [entry[0] for entry in signals]
    assert names == [
        *("on_request_start", "connection", "on_request_headers_sent", "on_request_chunk_sent"),
        *("on_request_redirect", "connection", "on_request_headers_sent", "on_request_end"),
        "on_response_chunk_received",
        *("on_request_start", "connection", "on_request_headers_sent", "on_request_end"),
        "on_response_chunk_received",
        *("on_request_start", "connection", "on_request_headers_sent", "on_request_chunk_sent"),
        "on_request_exception",
    ]
    assert raised is aiohttp.ClientOSError  # a reset after the request: "connection reset"


# -- timeouts and exception types --------------------------------------------------------------


async def test_sock_read_timeout_type(raw_faults: RawFaults) -> None:
    """A POST meeting ``sock_read`` raises SocketTimeoutError, sent once."""

    def reset() -> None:
        raw_faults.reset()
        raw_faults.mode = RawMode.NEVER_ANSWER

    async def case(session: aiohttp.ClientSession) -> Any:
        started = time.monotonic()
        with pytest.raises(aiohttp.ServerTimeoutError) as caught:
            async with session.post(raw_faults.url + "/silent", data=b"x"):
                pass
        return type(caught.value), len(raw_faults.arrivals()), time.monotonic() - started < 1.0

    timeout = aiohttp.ClientTimeout(total=None, sock_read=0.2)
    assert await both(case, reset, timeout=timeout) == (aiohttp.SocketTimeoutError, 1, True)


async def test_total_timeout_type(raw_faults: RawFaults) -> None:
    """``ClientTimeout(total=)`` running out raises asyncio.TimeoutError, not retried."""

    def reset() -> None:
        raw_faults.reset()
        raw_faults.mode = RawMode.NEVER_ANSWER

    async def case(session: aiohttp.ClientSession) -> Any:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError) as caught:
            async with session.get(raw_faults.url + "/silent"):
                pass
        return type(caught.value), len(raw_faults.arrivals()), time.monotonic() - started < 1.0

    timeout = aiohttp.ClientTimeout(total=0.2)
    kind, count, prompt = await both(case, reset, timeout=timeout)
    assert (issubclass(kind, asyncio.TimeoutError), count, prompt) == (True, 1, True)


async def test_half_response_is_payload_error(raw_faults: RawFaults) -> None:
    """A body cut short: the response is returned, reading it raises ClientPayloadError."""

    def reset() -> None:
        raw_faults.reset()
        raw_faults.mode = RawMode.HALF_RESPONSE

    async def case(session: aiohttp.ClientSession) -> Any:
        async with session.get(raw_faults.url + "/half") as response:
            with pytest.raises(aiohttp.ClientPayloadError) as caught:
                await response.read()
            return response.status, type(caught.value), len(raw_faults.arrivals())

    assert await both(case, reset) == (200, aiohttp.ClientPayloadError, 1)


async def test_invalid_gzip_on_a_final_200(fault_server: FaultServer) -> None:
    """A 200 whose gzip body is invalid raises ClientPayloadError when read, sent once."""

    def reset() -> None:
        fault_server.reset()
        bad = {"Content-Encoding": "gzip"}
        fault_server.script("/garbled", [Reply(200, headers=bad, body=b"this is not gzip")])

    async def case(session: aiohttp.ClientSession) -> Any:
        async with session.get(fault_server.url + "/garbled") as response:
            with pytest.raises(aiohttp.ClientPayloadError) as caught:
                await response.read()
            return type(caught.value), len(fault_server.arrivals())

    assert await both(case, reset) == (aiohttp.ClientPayloadError, 1)


async def test_non_http_url_and_raise_for_status(fault_server: FaultServer) -> None:
    """A URL aiohttp cannot send, and ``raise_for_status=True`` on a 404, raise as they do."""

    def reset() -> None:
        fault_server.reset()
        fault_server.script("/missing", [Reply(404, body=b"no such thing")])

    async def case(session: aiohttp.ClientSession) -> Any:
        with pytest.raises(aiohttp.ClientError) as bad_url:
            async with session.get("ftp://127.0.0.1/file"):
                pass
        with pytest.raises(aiohttp.ClientResponseError) as status:
            async with session.get(fault_server.url + "/missing"):
                pass
        return type(bad_url.value), status.value.status, len(fault_server.arrivals())

    kind, status, count = await both(case, reset, raise_for_status=True)
    assert (kind, status, count) == (aiohttp.NonHttpUrlClientError, 404, 1)


async def test_connect_error_type(refused_port: int) -> None:
    """A refused connection raises ClientConnectorError (forbear: after its retries)."""

    async def case(session: aiohttp.ClientSession) -> Any:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            async with session.get(f"http://127.0.0.1:{refused_port}/nothing"):
                pass
        return type(caught.value), caught.value.host, caught.value.port

    assert await both(case, lambda: None) == (
        aiohttp.ClientConnectorError,
        "127.0.0.1",
        refused_port,
    )


# -- connections and closing -------------------------------------------------------------------


async def test_connection_reused_and_dropped_like_plain(fault_server: FaultServer) -> None:
    """Read or released responses give their connection back; one closed mid-body does not."""
    log: list[tuple[Any, ...]] = []

    def reset() -> None:
        fault_server.reset()
        log.clear()
        fault_server.script("/partial", [Reply(200, body_size=2_000_000)])

    async def case(session: aiohttp.ClientSession) -> Any:
        async def fetch(path: str, finish: str) -> None:
            async with session.get(fault_server.url + path) as response:
                if finish == "read":
                    await response.read()
                elif finish == "release":
                    await response.content.wait_eof()
                    response.release()
                else:
                    await response.content.readany()
                    response.close()
                    assert response.closed

        await fetch("/whole", "read")
        await fetch("/whole", "read")
        await fetch("/partial", "close")
        await fetch("/whole", "release")
        await fetch("/whole", "read")
        wanted = {"on_connection_create_end": "new", "on_connection_reuseconn": "reused"}
        return [wanted[entry[0]] for entry in log if entry[0] in wanted]

    connections = await both(case, reset, trace_configs=[tracing(log)])
    assert connections == ["new", "reused", "reused", "new", "reused"]


async def test_closed_session_refuses_to_send(fault_server: FaultServer) -> None:
    """After ``close()`` the session raises aiohttp's RuntimeError; nothing more arrives."""

    async def case(session: aiohttp.ClientSession) -> Any:
        async with session.get(fault_server.url + "/before") as response:
            await response.read()
        await session.close()
        with pytest.raises(RuntimeError) as caught:
            async with session.get(fault_server.url + "/after"):
                pass
        return str(caught.value), [a.path for a in fault_server.arrivals()], session.closed

    message, paths, closed = await both(case, fault_server.reset)
    assert "closed" in message.lower() and paths == ["/before"] and closed


# -- the client's timeout and forbear's deadline ------------------------------------------------


async def test_sock_read_bounds_each_attempt_not_the_call(raw_faults: RawFaults) -> None:
    """``sock_read`` bounds one attempt: a server that never answers costs one per attempt."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    retry = RetryMiddleware(policy=Policy(max_attempts=3, backoff=POLICY.backoff))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=0.2)
    async with aiohttp.ClientSession(middlewares=[retry], timeout=timeout) as session:
        started = time.monotonic()
        with pytest.raises(aiohttp.SocketTimeoutError):
            async with session.get(raw_faults.url + "/silent"):
                pass
        elapsed = time.monotonic() - started
    assert len(raw_faults.arrivals()) == 3
    assert 3 * 0.2 <= elapsed < 3 * 0.2 + 1.0


async def test_deadline_bounds_the_whole_call(raw_faults: RawFaults) -> None:
    """``Policy(deadline=)`` stops further attempts: the call ends within deadline + one timeout."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    retry = RetryMiddleware(policy=Policy(max_attempts=50, deadline=0.5, backoff=POLICY.backoff))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=0.2)
    async with aiohttp.ClientSession(middlewares=[retry], timeout=timeout) as session:
        started = time.monotonic()
        with pytest.raises(aiohttp.SocketTimeoutError) as caught:
            async with session.get(raw_faults.url + "/silent"):
                pass
        elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 0.2 + 0.5
    assert 2 <= len(raw_faults.arrivals()) <= 4
    assert "deadline" in getattr(caught.value, "__notes__", [""])[0]
