"""The whole `forbear.testing` conformance table, through a `requests.Session`."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

import pytest
import requests
from requests.adapters import HTTPAdapter

from forbear import error_kind
from forbear_requests import RetryAdapter
from forbear_testing import SCENARIOS, Result, Scenario, ScenarioEnv, SendContext, run_scenario

#: Cancellation interrupts the main thread with a signal, as Ctrl-C would (POSIX only).
CAN_CANCEL = hasattr(signal, "pthread_kill") and hasattr(signal, "SIGUSR1")


class Cancelled(BaseException):
    """Raised in the main thread when a cancellable request's time is up."""


_armed = threading.Event()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _armed.is_set():
        raise Cancelled


@contextlib.contextmanager
def cancelled_after(seconds: float) -> Iterator[None]:
    """Raise `Cancelled` in this (the main) thread after ``seconds``, wherever it is."""
    signal.signal(signal.SIGUSR1, _on_signal)  # left installed: it ignores unarmed signals
    target = threading.get_ident()
    lock = threading.Lock()
    done = False

    def fire() -> None:
        with lock:
            if not done:
                signal.pthread_kill(target, signal.SIGUSR1)

    timer = threading.Timer(seconds, fire)
    _armed.set()
    timer.start()
    try:
        yield
    finally:
        _armed.clear()
        with lock:
            done = True
        timer.cancel()
        timer.join()


def _failure(exc: requests.RequestException) -> Result:
    kind = error_kind(exc)
    if kind is None:
        raise exc  # not a failure the table expects: let the test show it
    return Result.failure(exc, kind)


class SessionDriver:
    """A `requests.Session` with `RetryAdapter` mounted on ``http://``, one per scenario."""

    name = "requests"
    supports_cancel = CAN_CANCEL

    def send(self, ctx: SendContext) -> Sequence[Result]:
        # A pool of one blocks for its connection: a leaked response would hang the test.
        inner = HTTPAdapter(
            pool_maxsize=ctx.pool_size or max(10, ctx.concurrency),
            pool_block=ctx.pool_size is not None,
        )
        adapter = RetryAdapter(
            inner,
            policy=ctx.policy,
            token=ctx.token_source(),
            idempotency_keys=ctx.idempotency_keys,
        )
        with requests.Session() as session:
            session.mount("http://", adapter)

            def send_one() -> Result:
                try:
                    response = session.request(
                        ctx.method,
                        ctx.url,
                        headers=ctx.headers,
                        data=ctx.content(),
                        timeout=ctx.timeout,
                    )
                except requests.RequestException as exc:
                    return _failure(exc)
                return Result.response(response.status_code, response.content)

            if ctx.cancel_after is not None:
                return [_cancellable(send_one, ctx.cancel_after)]
            return ctx.gather(send_one)


def _cancellable(send_one: Callable[[], Result], seconds: float) -> Result:
    try:
        with cancelled_after(seconds):
            return send_one()
    except Cancelled:
        return Result.cancellation()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_conformance(scenario: Scenario, conformance_env: ScenarioEnv) -> None:
    """requests.Session with RetryAdapter does what the scenario's summary says."""
    run_scenario(SessionDriver(), scenario, conformance_env)
