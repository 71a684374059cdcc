"""The conformance harness: the table is passable with the core's public API alone, and the
harness catches the mistakes it exists to catch (no retries, impatience, lost notes, stale
tokens, a request that will not wait)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import httpx
import pytest

from forbear import ErrorKind, Outcome, Retrier
from forbear_testing import (
    SCENARIOS,
    Result,
    Scenario,
    ScenarioEnv,
    SendContext,
    arun_scenario,
    run_scenario,
    scenario_named,
)

_KINDS: tuple[tuple[type[httpx.TransportError], ErrorKind], ...] = (
    (httpx.ConnectError, ErrorKind.CONNECT),
    (httpx.ReadTimeout, ErrorKind.READ_TIMEOUT),
    (httpx.ReadError, ErrorKind.DISCONNECT),
    (httpx.RemoteProtocolError, ErrorKind.PROTOCOL),
)


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, on Python 3.10 too."""
    exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]


def kind_of(exc: httpx.TransportError) -> ErrorKind:
    return next((kind for cls, kind in _KINDS if isinstance(exc, cls)), ErrorKind.PROTOCOL)


def _client_args(ctx: SendContext) -> dict[str, object]:
    limits = httpx.Limits(max_connections=ctx.pool_size) if ctx.pool_size else httpx.Limits()
    return {"timeout": ctx.timeout, "limits": limits}


def _retrier(ctx: SendContext) -> Retrier:
    return Retrier(
        policy=ctx.policy, token=ctx.token_source(), idempotency_keys=ctx.idempotency_keys
    )


class _Request(NamedTuple):
    method: str
    url: str
    headers: dict[str, str]
    content: Any


def _failure(error: Exception) -> ErrorKind | None:
    return kind_of(error) if isinstance(error, httpx.TransportError) else None


def _outcome(response: httpx.Response) -> Outcome:
    return Outcome.response(response.status_code, response.headers)


class _SyncHttpx:
    """A `forbear.SyncAdapter` over a plain `httpx.Client`: the four translations, no rule."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.outcome = _outcome
        self.failure = _failure

    def send(self, request: _Request, headers: Mapping[str, str] | None) -> httpx.Response:
        built = self.client.build_request(
            request.method,
            request.url,
            headers={**request.headers, **(headers or {})},
            content=request.content,
        )
        return self.client.send(built, stream=True)

    def replayable(self, request: _Request) -> bool:
        return not isinstance(request.content, Iterator)

    def release(self, response: httpx.Response) -> None:
        response.close()


class _AsyncHttpx:
    """The same over `httpx.AsyncClient` (a `forbear.AsyncAdapter`)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.outcome = _outcome
        self.failure = _failure

    async def send(self, request: _Request, headers: Mapping[str, str] | None) -> httpx.Response:
        built = self.client.build_request(
            request.method,
            request.url,
            headers={**request.headers, **(headers or {})},
            content=request.content,
        )
        return await self.client.send(built, stream=True)

    def replayable(self, request: _Request) -> bool:
        return isinstance(request.content, (bytes, type(None)))

    async def release(self, response: httpx.Response) -> None:
        await response.aclose()


class ReferenceDriver:
    """Plain httpx through the core's sync runner (`Retrier.run_sync`), as an adapter does."""

    name = "reference-sync"

    def send(self, ctx: SendContext) -> list[Result]:
        retrier = _retrier(ctx)
        with httpx.Client(**_client_args(ctx)) as client:  # type: ignore[arg-type]
            adapter = _SyncHttpx(client)
            return ctx.gather(lambda: self._one(adapter, retrier, ctx))

    def _one(self, adapter: _SyncHttpx, retrier: Retrier, ctx: SendContext) -> Result:
        request = _Request(ctx.method, ctx.url, dict(ctx.headers), ctx.content())
        try:
            response = retrier.run_sync(adapter, request, ctx.method, ctx.url, ctx.headers)
        except httpx.TransportError as exc:
            return Result.failure(exc, kind_of(exc))
        return Result.response(response.status_code, response.read())


class AsyncReferenceDriver:
    """The same through the async runner (`Retrier.run_async`, sleeping with anyio)."""

    name = "reference-async"

    async def send(self, ctx: SendContext) -> list[Result]:
        retrier = _retrier(ctx)
        async with httpx.AsyncClient(**_client_args(ctx)) as client:  # type: ignore[arg-type]
            adapter = _AsyncHttpx(client)
            return await ctx.agather(lambda: self._one(adapter, retrier, ctx))

    async def _one(self, adapter: _AsyncHttpx, retrier: Retrier, ctx: SendContext) -> Result:
        request = _Request(ctx.method, ctx.url, dict(ctx.headers), ctx.acontent())
        try:
            response = await retrier.run_async(adapter, request, ctx.method, ctx.url, ctx.headers)
        except httpx.TransportError as exc:
            return Result.failure(exc, kind_of(exc))
        return Result.response(response.status_code, await response.aread())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_reference_sync_driver_passes(scenario: Scenario, conformance_env: ScenarioEnv) -> None:
    """Plain httpx through the core's public runner passes every scenario."""
    run_scenario(ReferenceDriver(), scenario, conformance_env)


ASYNC_PATHS = [
    "cancel-during-backoff",
    "401-concurrent-single-exchange",
    "generator-body-sent-once",
]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("name", ASYNC_PATHS)
async def test_reference_async_driver_passes(
    name: str, conformance_env: ScenarioEnv, anyio_backend: str
) -> None:
    """The async harness runs, cancels and gathers through an async driver."""
    await arun_scenario(AsyncReferenceDriver(), scenario_named(name), conformance_env)


# -- drivers that get it wrong ---------------------------------------------------------------


class NaiveDriver:
    """Retries up to ``attempts`` times at once, ignoring Retry-After, adding no note."""

    name = "naive"

    def __init__(self, attempts: int = 1, *, note: bool = False, token: bool = True) -> None:
        self.attempts, self.note, self.token = attempts, note, token

    def send(self, ctx: SendContext) -> Sequence[Result]:
        headers = ctx.headers
        if ctx.token is not None and self.token:
            headers["Authorization"] = f"Bearer {ctx.token}"
        with httpx.Client(timeout=ctx.timeout) as client:
            for attempt in range(1, self.attempts + 1):
                try:
                    response = client.request(
                        ctx.method, ctx.url, headers=headers, content=ctx.content()
                    )
                except httpx.TransportError as exc:
                    if attempt == self.attempts:
                        if self.note:
                            add_note(exc, "forbear: naive")
                        return [Result.failure(exc, kind_of(exc))]
                    continue
                if response.status_code < 400 or attempt == self.attempts:
                    return [Result.response(response.status_code, response.content)]
        raise AssertionError("unreachable")


def test_no_retries_is_caught(conformance_env: ScenarioEnv) -> None:
    """A client that never retries fails the 503-then-200 scenario."""
    with pytest.raises(AssertionError, match="expected status 200"):
        run_scenario(NaiveDriver(), scenario_named("503-then-200"), conformance_env)


def test_impatience_is_caught(conformance_env: ScenarioEnv) -> None:
    """A client that retries before Retry-After has passed fails the scenario."""
    with pytest.raises(AssertionError, match="too soon"):
        run_scenario(NaiveDriver(2), scenario_named("429-retry-after-seconds"), conformance_env)


def test_early_http_date_retry_is_caught(conformance_env: ScenarioEnv) -> None:
    """A retry before the HTTP-date of Retry-After fails the scenario."""
    with pytest.raises(AssertionError, match="before the Retry-After date"):
        run_scenario(NaiveDriver(2), scenario_named("429-retry-after-http-date"), conformance_env)


def test_too_many_attempts_are_caught(conformance_env: ScenarioEnv) -> None:
    """Six sends to an always-503 server fail the five-attempt scenario."""
    with pytest.raises(AssertionError, match="arrival"):
        run_scenario(NaiveDriver(6), scenario_named("503-always-gives-up"), conformance_env)


def test_missing_history_note_is_caught(conformance_env: ScenarioEnv) -> None:
    """A final exception without forbear's attempt-history note fails the scenario."""
    scenario = scenario_named("post-reset-after-send-not-retried")
    with pytest.raises(AssertionError, match="note"):
        run_scenario(NaiveDriver(1), scenario, conformance_env)
    run_scenario(NaiveDriver(1, note=True), scenario, conformance_env)


def test_ignoring_the_given_token_is_caught(conformance_env: ScenarioEnv) -> None:
    """A driver that does not start from the context's token fails the token scenario."""
    with pytest.raises(AssertionError):
        run_scenario(NaiveDriver(2, token=False), scenario_named("401-reexchange"), conformance_env)


def test_sync_cancellation_is_skipped_unless_supported(conformance_env: ScenarioEnv) -> None:
    """A sync driver that cannot cancel has the cancellation scenario skipped."""
    with pytest.raises(pytest.skip.Exception, match="cannot cancel"):
        run_scenario(NaiveDriver(), scenario_named("cancel-during-backoff"), conformance_env)


class NoWaitAsyncDriver:
    """Gives up at once instead of waiting out the back-off."""

    name = "no-wait"

    async def send(self, ctx: SendContext) -> Sequence[Result]:
        async with httpx.AsyncClient(timeout=ctx.timeout) as client:
            response = await client.request(ctx.method, ctx.url)
            return [Result.response(response.status_code, response.content)]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_not_waiting_is_caught_by_the_cancellation_scenario(
    conformance_env: ScenarioEnv, anyio_backend: str
) -> None:
    """A request that returns instead of waiting out Retry-After: 30 fails the scenario."""
    with pytest.raises(AssertionError, match="finished before being cancelled"):
        await arun_scenario(
            NoWaitAsyncDriver(), scenario_named("cancel-during-backoff"), conformance_env
        )


def test_gather_runs_at_once(conformance_env: ScenarioEnv) -> None:
    """gather starts all concurrent sends together (they meet at a barrier)."""
    ctx = conformance_env.prepare(scenario_named("401-concurrent-single-exchange"))
    barrier = threading.Barrier(ctx.concurrency, timeout=10)

    def one() -> Result:
        barrier.wait()
        return Result.response(200)

    assert len(ctx.gather(one)) == ctx.concurrency


def test_result_constructors() -> None:
    """Result says a response, a classified failure or a cancellation."""
    error = OSError("boom")
    assert Result.response(503, b"x") == Result(status=503, body=b"x")
    assert Result.failure(error, "connect").kind == "connect"
    assert Result.failure(error, ErrorKind.DISCONNECT).kind == "disconnect"
    assert Result.cancellation().cancelled
    with pytest.raises(ValueError):
        Result.failure(error, "nonsense")
