"""The scripted fault server: `Reply`, `FaultServer` and `serve`.

Tests tell a `FaultServer` what to answer, path by path: scripted replies for the next
requests, an answer for every request, a token-bucket rate limit (whose rate may change while
it runs, which may be kept per API key and may announce its state in a rate-limit dialect), a
fixed window, a cap on requests in flight, a
bearer-token requirement.
Replies can carry ``Retry-After`` (seconds, or an HTTP-date computed from the server's clock
when the reply is sent), wait before answering, stream megabytes, or send a gzip bomb.
Scripting is thread-safe: the server answers from its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import threading
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from email.utils import formatdate
from functools import lru_cache
from typing import TypeVar, overload

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from ._limits import (
    EpochWindow,
    InFlight,
    TokenBucket,
    bucket_headers,
    check_dialect,
    retry_after_seconds,
)
from ._service import Service, serve_service, stopping

__all__ = ["DEFAULT_REPLY", "FaultServer", "Reply", "serve"]

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer. Only ``status`` is positional.

    ``retry_after`` sends ``Retry-After: <seconds>`` (whole numbers without a fraction);
    ``retry_after_date`` sends an HTTP-date at least that many seconds after the moment the
    reply is sent (rounded up to the next whole second). ``delay`` waits before the headers.
    ``body_size`` streams that many bytes in ``chunk_size`` chunks instead of ``body``;
    ``gzip_bomb`` sends a gzip body (``Content-Encoding: gzip``) that decodes to that many zero
    bytes while being a thousand times smaller on the wire.
    """

    status: int = 200
    _: KW_ONLY
    headers: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    retry_after: float | None = None
    retry_after_date: float | None = None
    delay: float = 0.0
    body_size: int | None = None
    gzip_bomb: int | None = None
    chunk_size: int = 64 * 1024
    #: The headers as ``(name, value)`` pairs, in order.
    header_pairs: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"Reply.status must be 100-599, got {self.status!r}")
        pairs = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        object.__setattr__(self, "header_pairs", tuple((str(k), str(v)) for k, v in pairs))
        for name in ("retry_after", "retry_after_date", "delay"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Reply.{name} must be a finite number >= 0, got {value!r}")
        if self.body_size is not None and self.gzip_bomb is not None:
            raise ValueError("Reply takes body_size or gzip_bomb, not both")
        if self.chunk_size < 1:
            raise ValueError(f"Reply.chunk_size must be >= 1, got {self.chunk_size!r}")

    async def respond(self, stopping: asyncio.Event | None = None) -> Response:
        """The response for this reply, after its ``delay`` (cut short once ``stopping`` is set)."""
        if self.delay:
            with anyio.move_on_after(self.delay):
                await (stopping.wait() if stopping is not None else anyio.sleep_forever())
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.header_pairs]
        if self.retry_after is not None:
            headers.append((b"retry-after", _delta(self.retry_after).encode()))
        if self.retry_after_date is not None:
            moment = math.ceil(time.time() + self.retry_after_date)
            headers.append((b"retry-after", formatdate(moment, usegmt=True).encode()))
        if not any(k == b"content-type" for k, _ in headers):
            headers.append((b"content-type", b"text/plain; charset=utf-8"))
        response: Response
        if self.body_size is not None:
            response = StreamingResponse(_stream(self.body_size, self.chunk_size), self.status)
            headers.append((b"content-length", str(self.body_size).encode()))
        elif self.gzip_bomb is not None:
            body = await anyio.to_thread.run_sync(gzip_zeros, self.gzip_bomb)
            response = Response(body, self.status)
            headers.append((b"content-encoding", b"gzip"))
        else:
            response = Response(self.body, self.status)
        response.raw_headers.extend(headers)
        return response


#: What a path answers when nothing is scripted for it.
DEFAULT_REPLY = Reply(200, body=b"ok")


def _delta(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


async def _stream(size: int, chunk_size: int) -> AsyncIterator[bytes]:
    chunk = b"x" * chunk_size
    while size > 0:
        piece = chunk if size >= chunk_size else chunk[:size]
        size -= len(piece)
        yield piece
        # Let the loop run between chunks: a client that hung up is noticed at once, instead
        # of after the whole body was written into a dead socket.
        await anyio.sleep(0)


@lru_cache(maxsize=4)
def gzip_zeros(size: int) -> bytes:
    """A gzip member that decodes to ``size`` zero bytes (about ``size / 1000`` on the wire)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = []
    while size > 0:
        piece = block if size >= len(block) else block[:size]
        size -= len(piece)
        parts.append(compressor.compress(piece))
    parts.append(compressor.flush())
    return b"".join(parts)


@dataclass(slots=True)
class _Rule:
    path: str
    prefix: bool
    bucket: TokenBucket | None = None
    #: The status a refusal answers with (429, or 503 for an overloaded server).
    status: int = 429
    #: The rate-limit dialect the bucket's state is announced in, or None.
    dialect: str | None = None

    def matches(self, path: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


@dataclass(slots=True)
class _KeyedRule:
    """A limiter that answers before scripts: a window, an in-flight cap, or buckets per key."""

    path: str
    prefix: bool
    #: The query parameter naming the key (an API key) that has limits of its own.
    per: str | None = None
    rate: float = 0.0
    burst: int = 0
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    window: EpochWindow | None = None
    announce: bool = False
    flight: InFlight | None = None
    delay: float = 0.0
    #: The rate-limit dialect the buckets' state is announced in, or None.
    dialect: str | None = None

    def matches(self, path: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


class FaultServer(Service):
    """A server that answers what the test scripted, path by path, and records every arrival.

    For a request, the first of these that applies answers it: a refusal by a limit per key
    (`limit` with ``per``), a fixed window (`window`) or an in-flight cap (`concurrency`), the
    path's scripted replies (`script`), its permanent reply (`always`), a rate limit (`limit`),
    a token endpoint (`token_endpoint`), a token requirement (`require_token`); otherwise
    `DEFAULT_REPLY` (200 ``ok``, after the in-flight cap's ``delay`` when one applies).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = {}
        self._always: dict[str, Reply] = {}
        self._limits: list[_Rule] = []
        self._keyed: list[_KeyedRule] = []
        self._token_rules: list[_Rule] = []
        self._token_endpoints: set[str] = set()
        self._tokens: set[str] = set()
        self._tokens_issued = 0
        super().__init__()

    def __repr__(self) -> str:
        where = self._url or "not served"
        return f"FaultServer({where})"

    def _build(self) -> ASGIApp:
        return Starlette(routes=[Route("/{path:path}", self._answer, methods=list(_METHODS))])

    def _clear(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._always.clear()
            self._limits.clear()
            self._keyed.clear()
            self._token_rules.clear()
            self._token_endpoints.clear()
            self._tokens.clear()
            self._tokens_issued = 0

    # -- scripting -------------------------------------------------------------------------

    def script(self, path: str, replies: Iterable[Reply]) -> None:
        """The next requests to ``path`` get these replies, in order (after any still queued)."""
        replies = list(replies)
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(replies)

    def pending(self, path: str) -> int:
        """How many scripted replies for ``path`` are still unused."""
        with self._lock:
            return len(self._scripts.get(path, ()))

    def always(self, path: str, reply: Reply | None) -> None:
        """Every request to ``path`` gets ``reply`` once its script is used up (None: stop)."""
        with self._lock:
            if reply is None:
                self._always.pop(path, None)
            else:
                self._always[path] = reply

    def limit(
        self,
        path: str,
        *,
        rate: float,
        burst: int = 0,
        prefix: bool = False,
        status: int = 429,
        per: str | None = None,
        announce: str | None = None,
    ) -> None:
        """Rate-limit ``path`` (every path under it with ``prefix``) like nginx ``limit_req``.

        One token bucket per call: ``rate`` requests a second, ``burst`` more at once. A
        request finding it empty gets ``status`` (429; 503 for a server shedding load) with
        ``Retry-After`` in whole seconds (at least 1). With ``per``, the name of a query
        parameter (``api_key``, say), each value of it gets a bucket of its own, and the limit
        applies before any script. `set_rate` changes the rate while the server runs.

        ``announce`` names a rate-limit dialect (``"ietf"``, ``"draft"``, ``"x"``,
        ``"openai"``; see `forbear_testing._limits.bucket_headers`): every answer the limit
        gives, a refusal or the default 200 it lets through, then carries the bucket's state
        in it, as it is once the request was counted.
        """
        if status not in (429, 503):
            raise ValueError(f"a limit answers 429 or 503, got {status!r}")
        check_dialect(announce)
        if per is not None:
            TokenBucket(rate, burst, now=0.0)  # refuse a bad rate or burst now
            rule = _KeyedRule(path, prefix, per=per, rate=rate, burst=burst, dialect=announce)
            with self._lock:
                self._keyed.append(rule)
            return
        bucket = TokenBucket(rate, burst, now=time.monotonic())
        with self._lock:
            self._limits.append(_Rule(path, prefix, bucket, status, announce))

    def set_rate(self, path: str, rate: float) -> int:
        """Change the rate of every `limit` set on ``path``, from now on; how many changed.

        The tokens a bucket holds are kept: a rate that drops is felt once they are spent.
        """
        now = time.monotonic()
        changed = 0
        with self._lock:
            for rule in self._limits:
                if rule.path == path and rule.bucket is not None:
                    rule.bucket.set_rate(rate, now=now)
                    changed += 1
            for keyed in self._keyed:
                if keyed.path == path and keyed.per is not None:
                    for bucket in keyed.buckets.values():
                        bucket.set_rate(rate, now=now)
                    keyed.rate = rate
                    changed += 1
        return changed

    def window(
        self,
        path: str,
        *,
        limit: int,
        window: float,
        prefix: bool = False,
        per: str | None = None,
        announce: bool = False,
    ) -> None:
        """A fixed window on ``path``: ``limit`` requests per ``window`` seconds, aligned to Unix
        time (per value of the query parameter ``per`` when given).

        Once a window is spent, every request until its end gets 429 with GitHub's headers
        (``X-RateLimit-Limit``, ``X-RateLimit-Remaining: 0``, ``X-RateLimit-Reset``: the
        window's end in whole Unix seconds) and no ``Retry-After``. With ``announce``, the
        requests let through carry the same headers (what remains in the window).
        """
        rule = _KeyedRule(path, prefix, per=per, window=EpochWindow(limit, window))
        rule.announce = announce
        with self._lock:
            self._keyed.append(rule)

    def concurrency(self, path: str, *, limit: int, delay: float, prefix: bool = False) -> None:
        """At most ``limit`` requests to ``path`` in flight; each one let through is answered
        after ``delay`` seconds, and one more at once gets 429 with ``Retry-After: 1``."""
        if not (math.isfinite(delay) and delay >= 0):
            raise ValueError(f"delay must be a finite number >= 0, got {delay!r}")
        rule = _KeyedRule(path, prefix, flight=InFlight(limit), delay=delay)
        with self._lock:
            self._keyed.append(rule)

    def require_token(self, path: str, *, prefix: bool = False) -> None:
        """``path`` (or every path under it) answers 401 unless it carries a valid bearer token."""
        with self._lock:
            self._token_rules.append(_Rule(path, prefix))

    def token_endpoint(self, path: str = "/token") -> None:
        """``path`` issues a token to any request, as JSON: ``{"access_token": ..., ...}``.

        It counts in `tokens_issued` and expires older tokens. Script the path to make the
        exchange itself fail (a 503, a slow answer).
        """
        with self._lock:
            self._token_endpoints.add(path)

    def issue_token(self, *, expire_previous: bool = True) -> str:
        """A new valid token (counted in `tokens_issued`); older ones expire unless told not to."""
        with self._lock:
            return self._issue(expire_previous)

    def _issue(self, expire_previous: bool) -> str:
        token = secrets.token_urlsafe(16)
        if expire_previous:
            self._tokens.clear()
        self._tokens.add(token)
        self._tokens_issued += 1
        return token

    def expire_tokens(self) -> None:
        """Every token issued so far stops being valid."""
        with self._lock:
            self._tokens.clear()

    @property
    def tokens_issued(self) -> int:
        """How many times `issue_token` was called since the last `reset`."""
        with self._lock:
            return self._tokens_issued

    # -- answering -------------------------------------------------------------------------

    async def _answer(self, request: Request) -> Response:
        path = request.url.path
        refusal, flight, delay, announced = self._admit(path, request.query_params)
        if refusal is not None:
            return await refusal.respond()
        try:
            reply = self._choose(path, request.headers.get("authorization"))
            if delay and reply is DEFAULT_REPLY:
                reply = Reply(200, body=DEFAULT_REPLY.body, delay=delay)
            if announced and reply is DEFAULT_REPLY:
                reply = Reply(200, body=DEFAULT_REPLY.body, headers=announced)
            return await reply.respond(stopping(request.scope))
        finally:
            if flight is not None:
                with self._lock:
                    flight.leave()

    def _admit(
        self, path: str, query: Mapping[str, str]
    ) -> tuple[Reply | None, InFlight | None, float, tuple[tuple[str, str], ...]]:
        """The limits that answer before scripts: a refusal, or the in-flight cap entered (to
        leave once answered), its delay, and the window's announcement for the answer."""
        flight: InFlight | None = None
        delay = 0.0
        announced: tuple[tuple[str, str], ...] = ()
        with self._lock:
            rules = [rule for rule in self._keyed if rule.matches(path)]
            if not rules:
                return None, None, 0.0, ()
            now, wall = time.monotonic(), time.time()
            for rule in rules:
                key = "" if rule.per is None else query.get(rule.per, "")
                if rule.window is not None:
                    allowed, remaining, reset = rule.window.hit(key, wall)
                    headers = (
                        ("X-RateLimit-Limit", str(rule.window.limit)),
                        ("X-RateLimit-Remaining", str(remaining)),
                        ("X-RateLimit-Reset", str(math.ceil(reset))),
                    )
                    if not allowed:
                        return Reply(429, headers=headers, body=b"window spent"), None, 0.0, ()
                    if rule.announce:
                        announced = headers
                elif rule.flight is not None:
                    if not rule.flight.enter():
                        if flight is not None:
                            flight.leave()
                        return Reply(429, retry_after=1, body=b"too many at once"), None, 0.0, ()
                    flight, delay = rule.flight, rule.delay
                else:
                    bucket = rule.buckets.get(key)
                    if bucket is None:
                        bucket = rule.buckets[key] = TokenBucket(rule.rate, rule.burst, now=now)
                    wait = bucket.take(now)
                    state = (
                        bucket_headers(rule.dialect, bucket, now=now, wall=wall)
                        if rule.dialect is not None
                        else ()
                    )
                    if wait > 0:
                        if flight is not None:
                            flight.leave()
                        reply = Reply(
                            429,
                            headers=state,
                            retry_after=retry_after_seconds(wait),
                            body=b"slow down",
                        )
                        return reply, None, 0.0, ()
                    announced = announced + state
        return None, flight, delay, announced

    def _choose(self, path: str, authorization: str | None) -> Reply:
        with self._lock:
            queued = self._scripts.get(path)
            if queued:
                return queued.popleft()
            if path in self._always:
                return self._always[path]
            now = time.monotonic()
            announced: tuple[tuple[str, str], ...] = ()
            for rule in self._limits:
                if rule.bucket is not None and rule.matches(path):
                    wait = rule.bucket.take(now)
                    headers = (
                        bucket_headers(rule.dialect, rule.bucket, now=now, wall=time.time())
                        if rule.dialect is not None
                        else ()
                    )
                    if wait > 0:
                        refusal = b"slow down" if rule.status == 429 else b"overloaded"
                        seconds = retry_after_seconds(wait)
                        return Reply(
                            rule.status, headers=headers, retry_after=seconds, body=refusal
                        )
                    announced += headers
            if path in self._token_endpoints:
                body = {"access_token": self._issue(True), "token_type": "Bearer"}
                return Reply(
                    200,
                    headers={"Content-Type": "application/json"},
                    body=json.dumps(body).encode(),
                )
            if any(rule.matches(path) for rule in self._token_rules) and not self._valid(
                authorization
            ):
                return Reply(
                    401,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                    body=b"unauthorized",
                )
            if announced:
                return Reply(200, headers=announced, body=DEFAULT_REPLY.body)
            return DEFAULT_REPLY

    def _valid(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() in self._tokens


_S = TypeVar("_S", bound=Service)


@overload
def serve() -> contextlib.AbstractContextManager[FaultServer]: ...
@overload
def serve(service: _S) -> contextlib.AbstractContextManager[_S]: ...
def serve(service: Service | None = None) -> contextlib.AbstractContextManager[Service]:
    """Serve ``service`` (a new `FaultServer` by default) on 127.0.0.1 at a free port.

    ``with serve() as server:`` gives the server with ``server.url`` set for the block; on exit
    every connection is closed and the server thread joined.
    """
    return serve_service(FaultServer() if service is None else service)
