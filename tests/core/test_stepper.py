"""`Stepper`'s first attempt: the runners' fast path for a success, the flow for anything else.

A decorated function's call is stepped here by hand (`enter_sync`, the function's answer,
`leave`, `judge`), as forbear-backoff and forbear-tenacity do from their libraries' callbacks.
"""

from __future__ import annotations

from typing import Any

import pytest

import forbear
import forbear._events
from forbear import Action, Event, HostGate, Outcome, Reason, Retrier, RetryBudget, TokenSource
from forbear._flow import _success_event
from forbear.flow import CallSite, Stepper, attempt_headers

httpx = pytest.importorskip("httpx")

API = "https://api.example.test"
URL = f"{API}/v1/items?page=2"


def answer(status: int, url: str = URL, method: str = "GET") -> Any:
    return httpx.Response(status, request=httpx.Request(method, url))


class Gate:
    """A gate (by its methods) that records what it is asked; ``free`` says ``held``'s opposite."""

    def __init__(self, *, held: bool = False) -> None:
        self.held = held
        self.calls: list[tuple[str, str]] = []

    def free(self, key: str) -> bool:
        self.calls.append(("free", key))
        return not self.held

    def delay(self, key: str) -> float:
        self.calls.append(("delay", key))
        return 0.0

    def succeeded(self, key: str, headers: Any, now: float) -> None:
        self.calls.append(("succeeded", key))

    def observe(self, key: str, decision: Any, headers: Any = None, **kw: Any) -> None:
        self.calls.append(("observe", key))


class Budget:
    """A budget (by its methods) that records its deposits."""

    def __init__(self) -> None:
        self.deposits: list[tuple[str, float | None]] = []

    def deposit(self, key: str = "", *, now: float | None = None) -> None:
        self.deposits.append((key, now))

    def try_withdraw(self, key: str = "", *, now: float | None = None) -> bool:
        return True


def step(site: CallSite, value: Any, *, raised: bool = False) -> tuple[Stepper, bool]:
    """One attempt of a call: enter, the function's answer, leave, judge."""
    stepper = site.begin()
    stepper.enter_sync()
    stepper.leave()
    return stepper, stepper.judge(value, raised=raised)


@pytest.fixture
def no_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting a flow fails the test."""

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a flow was started")

    monkeypatch.setattr(Retrier, "flow", refused)


@pytest.fixture
def redactions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs redacted for events."""
    seen: list[str] = []
    redact = forbear._events.redact_url

    def counted(url: str) -> str:
        seen.append(url)
        return redact(url)

    monkeypatch.setattr(forbear._events, "redact_url", counted)
    return seen


@pytest.mark.usefixtures("no_flow")
def test_a_first_attempt_success_starts_no_flow_and_keeps_the_books(
    redactions: list[str],
) -> None:
    """The runners' bookkeeping: one deposit at the call's start, the gate's success count."""
    gate, budget = Gate(), Budget()
    site = CallSite(gate=gate, budget=budget, origin=API)  # type: ignore[arg-type]
    response = answer(200)
    stepper, again = step(site, response)
    assert again is False
    assert (stepper.done, stepper.result) == (True, response)
    assert gate.calls == [("free", API), ("succeeded", API)]  # no slot reserved
    assert budget.deposits == [(API, stepper._started)]
    assert stepper.action is Action.RETURN
    assert redactions == []  # nobody listened: no event made


@pytest.mark.usefixtures("no_flow")
def test_the_event_of_a_quiet_success_is_made_on_demand(redactions: list[str]) -> None:
    """`Stepper.event` makes the event the flow would have emitted, once, when asked."""
    site = CallSite(gate=None, budget=None)
    stepper, _ = step(site, answer(204, method="post"))
    event = stepper.event
    assert event is not None and stepper.event is event
    assert (event.attempt, event.action, event.reason, event.status) == (
        1,
        Action.RETURN,
        Reason.SUCCESS,
        204,
    )
    assert (event.method, event.url, event.gate_wait) == ("POST", f"{API}/v1/items", 0.0)
    assert len(redactions) == 1


def test_a_listened_success_emits_once_and_matches_the_flows_event() -> None:
    """With a listener the event is emitted at once, the same as the flow's for a success."""
    events: list[Event] = []
    site = CallSite(gate=None, budget=None, on_event=events.append)
    stepper, _ = step(site, answer(200))
    assert events == [stepper.event]
    flow_events: list[Event] = []
    sent = (None, None, Outcome.response(200, {}))
    flow = Retrier(gate=None, budget=None).flow(
        "GET", URL, {}, sent=sent, started=0.0, on_event=flow_events.append
    )
    with pytest.raises(StopIteration):
        flow.send(None)
    assert flow_events == events


def test_the_site_remembers_the_origin_of_a_fast_success() -> None:
    """The next call's first attempt is held for the origin this one went to."""
    gate = Gate()
    site = CallSite(gate=gate, budget=None)  # type: ignore[arg-type]
    step(site, answer(200))
    assert site.last_origin == API
    assert gate.calls == [("succeeded", API)]  # no origin known before the first call
    step(site, answer(200))
    assert gate.calls[1:] == [("free", API), ("succeeded", API)]


def test_a_held_gate_reserves_a_slot_as_before() -> None:
    """A gate that holds something back is asked for a slot; the success still needs no flow."""
    gate = Gate(held=True)
    site = CallSite(gate=gate, budget=None, origin=API)  # type: ignore[arg-type]
    step(site, answer(200))
    assert gate.calls == [("free", API), ("delay", API), ("succeeded", API)]


def test_a_token_for_the_origin_is_sent_on_the_first_attempt() -> None:
    """No fast entry with a token to send: `attempt_headers` carries it."""
    token = TokenSource(lambda: "fresh", origins=[API], token="t0")
    stepper = CallSite(token=token, gate=None, budget=None).begin()
    stepper.enter_sync()
    assert attempt_headers() == {"Authorization": "Bearer t0"}
    stepper.leave()
    assert attempt_headers() == {}
    assert stepper.judge(answer(200), raised=False) is False


def test_an_overrides_block_takes_the_slow_entry() -> None:
    """Under `forbear.overrides` the first attempt takes the gate's slot, like the runners."""
    gate = Gate()
    site = CallSite(gate=gate, budget=None, origin=API)  # type: ignore[arg-type]
    with forbear.overrides(retries=False):
        step(site, answer(200))
    assert gate.calls == [("delay", API), ("succeeded", API)]


def test_anything_but_a_success_starts_the_flow_from_the_first_attempt() -> None:
    """A 503 starts the flow with the attempt already made: its deposit, one retry asked."""
    budget = Budget()
    site = CallSite(gate=None, budget=budget, origin=API)
    stepper, again = step(site, answer(503))
    assert again is True
    assert stepper._flow is not None
    assert stepper.action is Action.RETRY
    assert budget.deposits == [(API, stepper._started)]
    stepper.enter_sync()
    stepper.leave()
    assert stepper.judge(answer(200), raised=False) is False
    assert stepper.event is not None and stepper.event.attempt == 2


def test_a_judge_without_an_entry_starts_the_call_then() -> None:
    """`Pieces` judges without entering: the call begins when its first answer is judged."""
    budget = RetryBudget(ratio=1.0, min_per_second=0.0)
    stepper = CallSite(gate=HostGate(), budget=budget).begin()
    assert stepper.judge(answer(200), raised=False) is False
    assert budget.balance(API) == 1.0


# -- the retrier's helpers -------------------------------------------------------------------


def test_first_deposits_at_the_start_given() -> None:
    """`Retrier._first` reads the clock only when the request did not begin already."""
    budget = Budget()
    shared = Retrier(gate=None, budget=budget, clock=lambda: 7.0)
    assert shared._first(API) == 7.0
    assert shared._first(API, 3.0) == 3.0
    assert budget.deposits == [(API, 7.0), (API, 3.0)]


def test_succeeded_hands_back_the_event_it_emitted() -> None:
    """`Retrier._succeeded`: the event emitted, None when nobody listens; the same on demand."""
    outcome = Outcome.response(200, {"X-Request-Id": "r-1"})
    assert Retrier(gate=None, budget=None)._succeeded(API, outcome, "get", URL, 0.0) is None
    events: list[Event] = []
    emitted = Retrier(gate=None, budget=None, on_event=events.append)._succeeded(
        API, outcome, "get", URL, 0.0
    )
    assert events == [emitted]
    assert _success_event(outcome, "get", URL) == emitted
    assert emitted is not None and emitted.request_id == "r-1"
