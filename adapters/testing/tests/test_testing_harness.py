"""The conformance harness: the table is passable with the core's public API alone, and the
harness catches the mistakes it exists to catch (no retries, impatience, lost notes, stale
tokens, a request that will not wait)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import anyio
import httpx
import pytest

from forbear import Action, ErrorKind, Retrier
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
_FINAL = (Action.RETURN, Action.GIVE_UP)


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


class ReferenceDriver:
    """The adapter loop described in `forbear.Retrier`'s module, over plain httpx (sync)."""

    name = "reference-sync"

    def send(self, ctx: SendContext) -> list[Result]:
        retrier = _retrier(ctx)
        with httpx.Client(**_client_args(ctx)) as client:  # type: ignore[arg-type]
            return ctx.gather(lambda: self._one(client, retrier, ctx))

    def _one(self, client: httpx.Client, retrier: Retrier, ctx: SendContext) -> Result:
        content = ctx.content()
        call = retrier.begin(
            ctx.method, ctx.url, ctx.headers, replayable=not isinstance(content, Iterator)
        )
        while True:
            time.sleep(call.gate_delay())
            headers = {**ctx.headers, **call.headers()}
            auth = call.auth_sync()
            if auth is not None:
                headers[auth[0]] = auth[1]
            request = client.build_request(ctx.method, ctx.url, headers=headers, content=content)
            try:
                response = client.send(request, stream=True)
            except httpx.TransportError as exc:
                decision = call.on_error(kind_of(exc))
                if decision.action in _FINAL:
                    add_note(exc, call.note())
                    return Result.failure(exc, kind_of(exc))
                time.sleep(decision.wait)
                continue
            decision = call.on_response(response.status_code, response.headers)
            if decision.action in _FINAL:
                return Result.response(response.status_code, response.read())
            response.close()
            if decision.action is Action.REAUTH:
                call.reauth_sync()
            else:
                time.sleep(decision.wait)


class AsyncReferenceDriver:
    """The same loop for httpx.AsyncClient, sleeping with anyio (cancellable)."""

    name = "reference-async"

    async def send(self, ctx: SendContext) -> list[Result]:
        retrier = _retrier(ctx)
        async with httpx.AsyncClient(**_client_args(ctx)) as client:  # type: ignore[arg-type]
            return await ctx.agather(lambda: self._one(client, retrier, ctx))

    async def _one(self, client: httpx.AsyncClient, retrier: Retrier, ctx: SendContext) -> Result:
        content = ctx.acontent()
        call = retrier.begin(
            ctx.method, ctx.url, ctx.headers, replayable=isinstance(content, (bytes, type(None)))
        )
        while True:
            await anyio.sleep(call.gate_delay())
            headers = {**ctx.headers, **call.headers()}
            auth = await call.auth_async()
            if auth is not None:
                headers[auth[0]] = auth[1]
            request = client.build_request(ctx.method, ctx.url, headers=headers, content=content)
            try:
                response = await client.send(request, stream=True)
            except httpx.TransportError as exc:
                decision = call.on_error(kind_of(exc))
                if decision.action in _FINAL:
                    add_note(exc, call.note())
                    return Result.failure(exc, kind_of(exc))
                await anyio.sleep(decision.wait)
                continue
            decision = call.on_response(response.status_code, response.headers)
            if decision.action in _FINAL:
                return Result.response(response.status_code, await response.aread())
            await response.aclose()
            if decision.action is Action.REAUTH:
                await call.reauth_async()
            else:
                await anyio.sleep(decision.wait)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_reference_sync_driver_passes(scenario: Scenario, conformance_env: ScenarioEnv) -> None:
    """The core's public API, driven by a plain sync loop, passes every scenario."""
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
