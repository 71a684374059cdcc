"""The conformance harness: what an adapter implements (`Driver`, `AsyncDriver`), what it is
given (`SendContext`) and reports (`Result`), and `run_scenario` / `arun_scenario`, which set
the live servers up from a `Scenario`, call the driver and check everything the scenario
expects. An adapter's conformance test is a driver class and one parametrised test.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Protocol

import anyio

from forbear import ErrorKind, Policy, TokenSource

from ._records import Arrival
from ._scenarios import BodyKind, Scenario, Target
from ._server import FaultServer
from ._sockets import RawFaults, RawMode

__all__ = [
    "AsyncDriver",
    "Driver",
    "Result",
    "ScenarioEnv",
    "SendContext",
    "arun_scenario",
    "run_scenario",
]

#: A cancelled request must end within this long of its cancellation.
PROMPT = 0.5
#: After a cancellation, how long to watch for a stray arrival.
QUIET = 0.2


@dataclass(frozen=True, slots=True)
class Result:
    """What one logical request came to: a response, an exception, or a cancellation."""

    #: The final status (None for an exception or a cancellation).
    status: int | None = None
    #: The final response body, read in full.
    body: bytes = field(default=b"", repr=False)
    #: The exception the client raised.
    error: BaseException | None = None
    #: That exception classified as a `forbear.ErrorKind` value by the driver.
    kind: str | None = None
    #: The request was cancelled (sync drivers that support cancellation report this).
    cancelled: bool = False

    @classmethod
    def response(cls, status: int, body: bytes = b"") -> Result:
        """A response with this status and body."""
        return cls(status=status, body=body)

    @classmethod
    def failure(cls, error: BaseException, kind: ErrorKind | str) -> Result:
        """The client raised ``error``, of this `forbear.ErrorKind`."""
        return cls(error=error, kind=ErrorKind(kind).value)

    @classmethod
    def cancellation(cls) -> Result:
        """The request was cancelled before it finished."""
        return cls(cancelled=True)


@dataclass(frozen=True)
class SendContext:
    """Everything a driver needs to send a scenario's logical request(s).

    Build one client per `Driver.send` call, configured from these fields: ``policy``,
    ``timeout`` (connect and read), ``pool_size`` (max connections, when set),
    ``idempotency_keys`` (the adapter's opt-in), and a token source when `token_source`
    returns one. Send ``method`` to ``url`` with ``headers`` and the body from `content` (sync)
    or `acontent` (async) — a fresh body per call. Use `gather` / `agather` to send
    ``concurrency`` requests at once through that one client.
    """

    scenario: Scenario
    url: str
    policy: Policy
    timeout: float
    pool_size: int | None
    idempotency_keys: bool
    concurrency: int
    #: Seconds after which the harness cancels the request (async) or the driver must.
    cancel_after: float | None
    #: A sync callable returning a fresh token (it asks the server to issue one).
    exchange: Callable[[], str] | None
    #: The stale token the client starts with.
    token: str | None = field(default=None, repr=False)
    #: The origins the token is sent to.
    origins: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        """The request method."""
        return self.scenario.method

    @property
    def headers(self) -> dict[str, str]:
        """The caller's request headers (a new dict each time)."""
        return dict(self.scenario.headers)

    def content(self) -> bytes | Iterator[bytes] | None:
        """The body for a sync client: bytes, a one-shot generator, or None."""
        if self.scenario.body is None:
            return None
        if self.scenario.body_kind is BodyKind.GENERATOR:
            return (chunk for chunk in self.scenario.chunks())
        return self.scenario.body

    def acontent(self) -> bytes | AsyncIterator[bytes] | None:
        """The body for an async client: bytes, a one-shot async generator, or None."""
        if self.scenario.body is None:
            return None
        if self.scenario.body_kind is BodyKind.GENERATOR:
            return _agenerate(self.scenario.chunks())
        return self.scenario.body

    def token_source(self) -> TokenSource | None:
        """A `forbear.TokenSource` holding the stale token, or None when the scenario has none.

        Call it once per `Driver.send` and share it between the concurrent requests.
        """
        if self.exchange is None:
            return None
        return TokenSource(self.exchange, origins=self.origins, token=self.token)

    def gather(self, send_one: Callable[[], Result]) -> list[Result]:
        """Run ``send_one`` ``concurrency`` times at once (threads), in order of start."""
        if self.concurrency == 1:
            return [send_one()]
        barrier = threading.Barrier(self.concurrency)

        def released() -> Result:
            barrier.wait(timeout=30)
            return send_one()

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="forbear-gather") as pool:
            futures = [pool.submit(released) for _ in range(self.concurrency)]
            return [future.result() for future in futures]

    async def agather(self, send_one: Callable[[], Awaitable[Result]]) -> list[Result]:
        """Run ``send_one`` ``concurrency`` times at once (tasks), in order of start."""
        results: list[Result | None] = [None] * self.concurrency

        async def one(index: int) -> None:
            results[index] = await send_one()

        async with anyio.create_task_group() as group:
            for index in range(self.concurrency):
                group.start_soon(one, index)
        return [result for result in results if result is not None]


async def _agenerate(chunks: Sequence[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class Driver(Protocol):
    """A sync adapter under test.

    ``send`` sends the context's logical request(s) through a client built with the adapter
    and reports one `Result` each. Set ``supports_cancel = True`` only if the driver itself
    stops the request after ``ctx.cancel_after`` and reports `Result.cancellation`;
    otherwise cancellation scenarios are skipped for it.
    """

    name: str

    def send(self, ctx: SendContext) -> Sequence[Result]: ...


class AsyncDriver(Protocol):
    """An async adapter under test; the harness cancels it itself (`anyio.move_on_after`)."""

    name: str

    async def send(self, ctx: SendContext) -> Sequence[Result]: ...


class _Exchange:
    """The scenario's exchange: a new token from the fault server, counted."""

    def __init__(self, server: FaultServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
        return self._server.issue_token()

    def __repr__(self) -> str:
        return f"<conformance exchange, {self.calls} call(s)>"


@dataclass
class ScenarioEnv:
    """The live servers scenarios run against (the ``conformance_env`` fixture)."""

    server: FaultServer
    raw: RawFaults
    refused_port: int
    _exchange: _Exchange | None = field(default=None, init=False, repr=False)

    def prepare(self, scenario: Scenario) -> SendContext:
        """Reset the servers, set them up for ``scenario`` and return its send context."""
        self.server.reset()
        self.raw.reset()
        self._exchange = None
        base = self.server.url
        if scenario.target is Target.SERVER:
            if scenario.replies:
                self.server.script(scenario.path, scenario.replies)
            if scenario.always is not None:
                self.server.always(scenario.path, scenario.always)
        elif scenario.target is Target.REFUSED:
            base = f"http://127.0.0.1:{self.refused_port}"
        else:
            self.raw.mode = (
                RawMode.NEVER_ANSWER
                if scenario.target is Target.NEVER_ANSWER
                else RawMode.RESET_AFTER_REQUEST
            )
            base = self.raw.url
        token = None
        if scenario.token:
            self.server.require_token(scenario.path)
            token = self.server.issue_token()
            self.server.expire_tokens()  # the client's token is stale from the start
            self._exchange = _Exchange(self.server)
        return SendContext(
            scenario=scenario,
            url=base + scenario.path,
            policy=scenario.policy,
            timeout=scenario.timeout,
            pool_size=scenario.pool_size,
            idempotency_keys=scenario.idempotency_keys,
            concurrency=scenario.concurrency,
            cancel_after=scenario.cancel_after,
            exchange=self._exchange,
            token=token,
            origins=(base,),
        )

    def arrivals(self, scenario: Scenario) -> list[Arrival] | int:
        """The fault server's arrivals for the scenario, or the raw socket's connection count."""
        if scenario.target is Target.SERVER:
            return self.server.arrivals(scenario.path)
        if scenario.target is Target.REFUSED:
            return 0
        return len(self.raw.arrivals())

    @property
    def exchanges(self) -> int:
        """Token exchanges made since the last `prepare`."""
        return 0 if self._exchange is None else self._exchange.calls


def run_scenario(driver: Driver, scenario: Scenario, env: ScenarioEnv) -> None:
    """Run ``scenario`` with a sync ``driver`` against ``env`` and assert all it expects."""
    if scenario.cancel_after is not None and not getattr(driver, "supports_cancel", False):
        import pytest  # only here: the servers work without pytest running

        pytest.skip(f"{driver.name} cannot cancel a sync request from outside")
    ctx = env.prepare(scenario)
    started = time.monotonic()
    results = list(driver.send(ctx))
    elapsed = time.monotonic() - started
    if scenario.cancel_after is not None:
        time.sleep(QUIET)  # a stray retry would arrive now
    _check(scenario, env, ctx, results, elapsed)


async def arun_scenario(driver: AsyncDriver, scenario: Scenario, env: ScenarioEnv) -> None:
    """Run ``scenario`` with an async ``driver`` against ``env`` and assert all it expects."""
    ctx = env.prepare(scenario)
    started = time.monotonic()
    if scenario.cancel_after is None:
        results = list(await driver.send(ctx))
    else:
        with anyio.move_on_after(scenario.cancel_after) as scope:
            await driver.send(ctx)
        assert scope.cancelled_caught, (
            f"{scenario}: the request finished before being cancelled at "
            f"{scenario.cancel_after}s; it should still be waiting out its back-off"
        )
        results = [Result.cancellation()]
    elapsed = time.monotonic() - started
    if scenario.cancel_after is not None:
        await anyio.sleep(QUIET)  # a stray retry would arrive now
    _check(scenario, env, ctx, results, elapsed)


def _check(
    scenario: Scenario,
    env: ScenarioEnv,
    ctx: SendContext,
    results: list[Result],
    elapsed: float,
) -> None:
    expect = scenario.expect
    arrivals = env.arrivals(scenario)
    count = arrivals if isinstance(arrivals, int) else len(arrivals)
    where = f"{scenario} ({scenario.summary})"
    details = f"results={_brief(results)}, arrivals={_brief(arrivals)}"
    assert len(results) == ctx.concurrency, f"{where}: {len(results)} results, {details}"
    for result in results:
        if expect.status is not None:
            assert result.error is None and result.status == expect.status, (
                f"{where}: expected status {expect.status}, {details}"
            )
        if expect.error_kinds:
            assert result.error is not None and result.kind in expect.error_kinds, (
                f"{where}: expected an error of kind {sorted(expect.error_kinds)}, {details}"
            )
            notes = getattr(result.error, "__notes__", [])
            assert any("forbear" in note for note in notes), (
                f"{where}: the final error carries no forbear attempt-history note: {notes!r}"
            )
        if expect.cancelled:
            assert result.cancelled, f"{where}: expected a cancellation, {details}"
        if expect.body is not None:
            assert result.body == expect.body, (
                f"{where}: the final body is not the server's: {result.body[:200]!r}"
            )
    wanted = expect.arrivals
    in_range = count in wanted if isinstance(wanted, range) else count == wanted
    assert in_range, f"{where}: {count} arrival(s), expected {wanted}; {details}"
    if not isinstance(arrivals, int):
        _check_arrivals(scenario, ctx, arrivals, where)
    assert env.exchanges == expect.exchanges, (
        f"{where}: {env.exchanges} token exchange(s), expected {expect.exchanges}"
    )
    assert elapsed >= expect.min_elapsed, (
        f"{where}: took {elapsed:.3f}s, less than the {expect.min_elapsed}s of waits required"
    )
    if expect.max_elapsed is not None:
        assert elapsed <= expect.max_elapsed, (
            f"{where}: took {elapsed:.3f}s, more than {expect.max_elapsed}s"
        )
    if expect.cancelled:
        assert elapsed <= (scenario.cancel_after or 0.0) + PROMPT, (
            f"{where}: the cancellation took {elapsed:.3f}s to end the request"
        )


def _brief(items: Sequence[object] | int, limit: int = 6) -> str:
    """A repr short enough for an assertion message."""
    if isinstance(items, int) or len(items) <= limit:
        return repr(items)
    return f"[{', '.join(map(repr, items[:limit]))}, ... {len(items) - limit} more]"


def _check_arrivals(
    scenario: Scenario, ctx: SendContext, arrivals: list[Arrival], where: str
) -> None:
    if scenario.body is not None:
        for arrival in arrivals:
            assert arrival.body == scenario.body, (
                f"{where}: the server received {arrival.body!r}, not the whole body"
            )
    if scenario.expect.same_idempotency_key:
        keys = {arrival.header("idempotency-key") for arrival in arrivals}
        assert len(keys) == 1 and None not in keys and "" not in keys, (
            f"{where}: Idempotency-Key differs between arrivals or is missing: {keys!r}"
        )
        given = dict(scenario.headers).get("Idempotency-Key")
        assert given is None or keys == {given}, f"{where}: the caller's key was replaced"
    if scenario.token and ctx.concurrency == 1 and arrivals:
        assert arrivals[0].header("authorization") == f"Bearer {ctx.token}", (
            f"{where}: the first request did not carry the token the client was given"
        )
    if ctx.concurrency == 1:
        _check_retry_after(arrivals, where)


def _check_retry_after(arrivals: list[Arrival], where: str) -> None:
    """Each request after a Retry-After arrives no earlier than the server asked."""
    for earlier, later in itertools.pairwise(arrivals):
        value = earlier.retry_after
        if value is None:
            continue
        if value.strip().isdigit():
            gap = later.time - earlier.time
            assert gap >= int(value), (
                f"{where}: retried {gap:.3f}s after 'Retry-After: {value}', too soon"
            )
            continue
        try:
            moment = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            continue  # not a valid Retry-After: no floor to honour
        assert later.wall >= moment, (
            f"{where}: retried {moment - later.wall:.3f}s before the Retry-After date {value}"
        )
