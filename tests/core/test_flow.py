"""`Retrier.flow`: the one retry loop, driven here with plain values.

Each test plays the runner: it answers every effect the flow yields (a send from a script of
statuses and error kinds, a sleep by moving an injected clock) and asserts on the effects and
on what the flow hands back. Clocks, wall time and the jitter RNG are injected: nothing sleeps.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from flowplay import Answer, Clock, Plain, Played, play

import forbear
from forbear import (
    Action,
    ErrorKind,
    Event,
    HostGate,
    Outcome,
    Policy,
    Reason,
    Retrier,
    RetryBudget,
    TokenSource,
)
from forbear._gate import Again
from forbear.flow import Reading, Release, Replayable, Send, Sleep

API = "https://api.example.test"
URL = f"{API}/v1/items"
WALL = 784_111_767.0  # ten seconds before the date below
DATE_IN_10S = "Sun, 06 Nov 1994 08:49:37 GMT"


def retrier(**options: Any) -> Retrier:
    """A retrier on injected clocks and a seeded RNG, with its own gate and budget."""
    clock = options.setdefault("clock", Clock())
    options.setdefault("wall", lambda: WALL)
    options.setdefault("rng", random.Random(1))
    options.setdefault("gate", HostGate(clock=clock))
    options.setdefault("budget", RetryBudget(clock=clock))
    return Retrier(**options)


def run(
    shared: Retrier, answers: Sequence[Answer], method: str = "GET", url: str = URL, **kw: Any
) -> Played:
    headers = kw.pop("headers", {})
    replayable = kw.pop("replayable", True)
    clock = shared.clock if isinstance(shared.clock, Clock) else None
    return play(
        shared.flow(method, url, headers, **kw), answers, clock=clock, replayable=replayable
    )


def recorded(shared: Retrier) -> list[Event]:
    events: list[Event] = []
    shared.on_event = events.append
    return events


# -- construction and scope ------------------------------------------------------------------


def test_policy_must_be_a_policy() -> None:
    """Anything but a `Policy` as the policy is refused at once."""
    with pytest.raises(TypeError, match=r"forbear\.Policy"):
        Retrier(policy={"max_attempts": 3})  # type: ignore[arg-type]


def test_gate_and_budget_default_to_the_process_scope() -> None:
    """Without ``gate``/``budget`` every retrier shares the process's; None goes without."""
    first, second = Retrier(), Retrier()
    assert first.gate is second.gate is forbear.process_gate()
    assert first.budget is second.budget is forbear.process_budget()
    bare = Retrier(gate=None, budget=None)
    assert (bare.gate, bare.budget) == (None, None)
    own = HostGate()
    assert Retrier(gate=own).gate is own


@pytest.mark.parametrize("bad", [True, False, "gate", 3])
def test_a_gate_that_is_not_one_is_refused(bad: object) -> None:
    """Booleans and other objects are refused with a message naming what is accepted."""
    with pytest.raises(TypeError, match=r"gate must be a forbear\.HostGate"):
        Retrier(gate=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"budget must be a forbear\.RetryBudget"):
        Retrier(budget=bad)  # type: ignore[arg-type]


# -- the happy path --------------------------------------------------------------------------


def test_a_first_attempt_success_is_one_plain_send() -> None:
    """A success ends the flow after one send with no headers added, nothing slept."""
    shared = retrier()
    played = run(shared, [200])
    assert played.effects == [Send(None)]
    assert played.result == ("response", 1)


def test_a_first_attempt_success_deposits_and_is_counted_by_the_gate() -> None:
    """The budget earns from every first attempt; the gate counts the success for its key."""
    shared = retrier(budget=RetryBudget(ratio=1.0, min_per_second=0.0, clock=Clock()))
    run(shared, [200])
    assert shared.budget is not None
    assert shared.budget.balance(API) == 1.0


class _Spied(HostGate):
    """Nothing but a `HostGate` of another class: the runners ask it through its methods."""


def _counting(gate: HostGate) -> dict[str, int]:
    """Count calls of ``gate``'s `free`, `delay` and `succeeded` (made through the instance)."""
    calls = {"free": 0, "delay": 0, "succeeded": 0}
    for name in calls:
        method = getattr(gate, name)

        def counted(*args: Any, _name: str = name, _method: Any = method, **kw: Any) -> Any:
            calls[_name] += 1
            return _method(*args, **kw)

        setattr(gate, name, counted)
    return calls


class _Ticking(Plain):
    """`Plain`, each send taking ``step`` seconds of ``clock``."""

    def __init__(self, clock: Clock, step: float) -> None:
        self.clock = clock
        self.step = step

    def send(self, request: object, headers: Any) -> str:
        self.clock.now += self.step
        return "response"


def _calm_run(gate_class: type[HostGate]) -> tuple[dict[str, int], float | None]:
    """600 successes 4 ms apart (two window rolls), then a 429: the calls the gate got, and
    the rate the 429 starts pacing at."""
    clock = Clock()
    gate = gate_class(clock=clock, learn_for=0.1)
    calls = _counting(gate)  # (before the retrier reads the gate's methods)
    shared = retrier(clock=clock, gate=gate)
    adapter = _Ticking(clock, 0.004)
    for _ in range(600):
        assert shared.run_sync(adapter, None, "GET", URL, {}) == "response"
    run(shared, [(429, {"Retry-After": "1"}), 200])
    return calls, gate.rate(API)


def test_successes_on_the_calm_lane_teach_the_gate_what_succeeded_would() -> None:
    """The runner counts a calm origin's successes in place (`HostGate` calm lanes), only for a
    gate of exactly that class: the rate a first 429 starts from is the same either way."""
    in_place, rate = _calm_run(HostGate)
    through_methods, expected = _calm_run(_Spied)
    assert through_methods["free"] == 600
    assert through_methods["succeeded"] == 601  # and the flow's own success after the 429
    # New for 0.1 s, then calm: asked until the first roll after that, then once a second.
    assert in_place["succeeded"] < 600 / 2
    assert in_place["free"] < 600 / 2
    assert rate is not None
    assert rate == expected


def test_a_429_voids_the_calm_lane_at_once() -> None:
    """Once a 429 paces the origin, the next first send asks the gate for its slot."""
    clock = Clock()
    gate = HostGate(clock=clock, learn_for=0.0)
    calls = _counting(gate)
    shared = retrier(clock=clock, gate=gate)
    adapter = _Ticking(clock, 0.004)
    for _ in range(300):
        shared.run_sync(adapter, None, "GET", URL, {})
    calls.update(free=0, delay=0, succeeded=0)
    shared.run_sync(adapter, None, "GET", URL, {})
    assert calls == {"free": 0, "delay": 0, "succeeded": 0}  # on the lane
    # A 429 answered to another client of the gate, at the same moment.
    refused = forbear.Decision(Action.RETRY, 1.0, Reason.RETRY_AFTER, 1, 429, retry_after=1.0)
    gate.observe(API, refused, {"Retry-After": "1"}, now=clock.now)
    assert gate.rate(API) is not None
    calls.update(free=0, delay=0, succeeded=0)
    shared.run_sync(adapter, None, "GET", URL, {})
    assert calls["free"] == 1 or calls["delay"] == 1


def test_a_setting_changed_after_construction_is_followed() -> None:
    """The runners work out what they read on every request from the settings once; setting
    one again (a gate, a budget, a token) is followed from the next request on."""
    clock = Clock()
    old = HostGate(clock=clock)
    calls = _counting(old)
    shared = retrier(clock=clock, gate=old)
    shared.gate = None
    shared.budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    shared.token = TokenSource(lambda: "t0k3n", origins=[API])
    adapter = _Headers()
    shared.run_sync(adapter, None, "GET", URL, {})
    assert calls == {"free": 0, "delay": 0, "succeeded": 0}
    assert shared.budget.balance(API) == 1.0
    assert adapter.sent == [{"Authorization": "Bearer t0k3n"}]


class _Headers(Plain):
    """`Plain`, keeping the headers each send added."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, request: object, headers: Any) -> str:
        self.sent.append(headers)
        return "response"


# -- idempotency keys and request ids --------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH", "post"])
def test_idempotency_key_added_to_post_and_patch(method: str) -> None:
    """POST and PATCH without a key get a UUID ``Idempotency-Key``, the same on every attempt."""
    played = run(retrier(idempotency_keys=True), [503, ErrorKind.READ_TIMEOUT, 502, 200], method)
    keys = {headers["Idempotency-Key"] for headers in played.sends if headers}
    assert len(played.sends) == 4 and len(keys) == 1
    key = keys.pop()
    assert str(uuid.UUID(key)) == key


def test_each_logical_request_gets_its_own_key() -> None:
    """Two logical requests never share an idempotency key."""
    shared = retrier(idempotency_keys=True)
    first, second = run(shared, [200], "POST"), run(shared, [200], "POST")
    assert first.sends[0] != second.sends[0]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"])
def test_no_key_for_other_methods(method: str) -> None:
    """Methods other than POST and PATCH get no idempotency key."""
    assert run(retrier(idempotency_keys=True), [200], method).sends == [None]


@pytest.mark.parametrize("name", ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"])
def test_caller_key_is_kept_and_makes_post_retryable(name: str) -> None:
    """A key the caller set (any case) is not replaced, and the POST may be re-sent."""
    played = run(retrier(idempotency_keys=True), [503, 200], "POST", headers={name: "k"})
    assert played.sends == [None, None]
    assert played.result == ("response", 2)


@pytest.mark.parametrize("value", ["", " ", ","])
def test_an_empty_caller_key_keys_nothing(value: str) -> None:
    """A POST whose ``Idempotency-Key`` is empty is not safe to re-send after a 503."""
    shared = retrier()
    events = recorded(shared)
    played = run(shared, [503, 200], "POST", headers={"Idempotency-Key": value})
    assert played.result == ("response", 1)
    assert events[-1].reason is Reason.NOT_SAFE_TO_RETRY


def test_without_the_option_post_is_not_retried_after_a_5xx() -> None:
    """With keys off, a POST that may have reached the server is handed back, not re-sent."""
    played = run(retrier(), [503, 200], "POST")
    assert (played.sends, played.result) == ([None], ("response", 1))


def test_request_id_added_once_per_logical_request() -> None:
    """``X-Request-Id`` is a UUID, the same on every attempt, new for the next request."""
    shared = retrier(request_ids=True)
    played = run(shared, [503, 503, 200])
    ids = {headers["X-Request-Id"] for headers in played.sends if headers}
    assert len(ids) == 1
    sent = ids.pop()
    assert str(uuid.UUID(sent)) == sent
    assert run(shared, [200]).sends[0] != {"X-Request-Id": sent}


def test_caller_request_id_is_not_replaced() -> None:
    """A request that already carries ``X-Request-Id`` gets no second one, and events name it."""
    shared = retrier(request_ids=True)
    events = recorded(shared)
    assert run(shared, [200], headers={"X-Request-Id": "mine"}).sends == [None]
    assert events[0].request_id == "mine"


# -- release, waits, the failure contract ----------------------------------------------------


def test_a_discarded_response_is_released_before_the_wait() -> None:
    """Each retried response is released, then the wait is slept, then the next send."""
    played = run(retrier(), [503, 503, 200])
    kinds = [type(effect) for effect in played.effects if not isinstance(effect, Replayable)]
    assert kinds == [Send, Release, Sleep, Send, Release, Sleep, Send]
    assert played.released == [("response", 1), ("response", 2)]


def test_the_last_response_is_handed_back_when_attempts_run_out() -> None:
    """Five 503s: the fifth response is returned, unreleased."""
    played = run(retrier(), [503] * 5)
    assert played.result == ("response", 5)
    assert ("response", 5) not in played.released


def test_a_judged_error_is_handed_back_with_the_history_as_a_note() -> None:
    """The last transport error comes back unchanged, with the attempt history in a note."""
    played = run(retrier(policy=Policy(max_attempts=2)), [503, ErrorKind.CONNECT])
    error = played.result
    assert isinstance(error, ConnectionError)
    (note,) = error.__notes__
    assert note.startswith("forbear: GET made 2 send(s): #1 503: retry (backoff) after ")
    assert note.endswith("#2 connect: give-up (attempts-exhausted)")


def test_an_error_forbear_does_not_judge_is_handed_back_at_once() -> None:
    """An error with no kind ends the request after that send, with no note on a first send."""
    boom = ValueError("not a transport error")
    played = run(retrier(), [boom, 200])
    assert played.result is boom
    assert len(played.sends) == 1
    assert not hasattr(boom, "__notes__")


def test_sends_never_exceed_attempts_plus_reauths() -> None:
    """A request refused forever makes ``max_attempts + max_reauths`` sends, then gives up."""
    token = TokenSource(lambda: "fresh", origins=[API], token="stale")
    shared = retrier(token=token, policy=Policy(max_attempts=3))
    events = recorded(shared)
    played = run(shared, [401] + [503] * 10)
    assert len(played.sends) == 4
    assert [event.action for event in events] == [
        Action.REAUTH,
        Action.RETRY,
        Action.RETRY,
        Action.GIVE_UP,
    ]
    assert played.sends[0] == {"Authorization": "Bearer stale"}
    assert played.sends[1:] == [{"Authorization": "Bearer fresh"}] * 3
    assert token.exchanges == 1


def test_the_token_goes_only_to_its_origins() -> None:
    """A request to another origin carries no token and never re-exchanges on a 401."""
    token = TokenSource(lambda: "fresh", origins=[API], token="stale")
    played = run(retrier(token=token), [401], url="https://elsewhere.test/x")
    assert played.sends == [None]
    assert played.result == ("response", 1)
    assert token.exchanges == 0


def test_a_one_shot_body_is_never_resent() -> None:
    """A request whose body cannot be replayed is handed back after its first answer."""
    shared = retrier()
    events = recorded(shared)
    played = run(shared, [503, 200], "PUT", replayable=False)
    assert played.result == ("response", 1)
    assert events[-1].reason is Reason.BODY_NOT_REPLAYABLE


def test_same_rng_seed_same_waits() -> None:
    """The injected RNG makes jittered waits reproducible."""

    def waits(seed: int) -> list[float]:
        return run(retrier(rng=random.Random(seed)), [503, 503, 503, 503, 200]).sleeps

    assert waits(5) == waits(5)
    assert waits(5) != waits(6)


def test_http_date_is_read_against_the_injected_wall_clock() -> None:
    """An HTTP-date ``Retry-After`` is turned into seconds from the retrier's wall clock."""
    shared = retrier(policy=Policy(retry_after_jitter=0.0), gate=None)
    played = run(shared, [(503, {"Retry-After": DATE_IN_10S}), 200])
    assert played.sleeps == [10.0]


def test_deadline_counts_on_the_injected_clock() -> None:
    """``Policy.deadline`` is measured from the first send on the retrier's clock."""
    shared = retrier(policy=Policy(deadline=1.0, retry_after_jitter=0.0), gate=None)
    events = recorded(shared)
    played = run(shared, [(503, {"Retry-After": "0.6"})] * 3)
    assert played.sleeps == [0.6]
    assert events[-1].reason is Reason.DEADLINE_EXCEEDED


# -- the budget --------------------------------------------------------------------------------


def test_spent_budget_gives_up_with_budget_exhausted() -> None:
    """A retry the budget cannot pay for ends the request: GIVE_UP ``budget-exhausted``."""
    shared = retrier(budget=RetryBudget(ratio=0.0, min_per_second=0.0))
    events = recorded(shared)
    played = run(shared, [(503, {"Retry-After": "2"}), 200])
    assert played.result == ("response", 1)
    (event,) = events
    assert (event.action, event.reason, event.wait) == (
        Action.GIVE_UP,
        Reason.BUDGET_EXHAUSTED,
        0.0,
    )


def test_429_retries_do_not_spend_the_budget() -> None:
    """Rate limits are the gate's business: a 429 is retried even with the budget spent."""
    shared = retrier(budget=RetryBudget(ratio=0.0, min_per_second=0.0))
    events = recorded(shared)
    run(shared, [(429, {"Retry-After": "1"}), 503])
    assert [event.reason for event in events] == [Reason.RETRY_AFTER, Reason.BUDGET_EXHAUSTED]


def test_a_retry_refused_by_another_rule_does_not_spend_the_budget() -> None:
    """Attempts run out before the budget is asked: its balance is untouched."""
    budget = RetryBudget(ratio=0.0, min_per_second=3.0, clock=lambda: 0.0)
    run(retrier(budget=budget, policy=Policy(max_attempts=3)), [503] * 3)
    assert budget.balance(API) == 1.0  # two retries taken, the third never asked for


# -- the gate --------------------------------------------------------------------------------


def test_429_is_observed_by_the_gate_and_paces_later_requests() -> None:
    """After a 429 the origin is paced: a crowd of later requests waits its turn."""
    clock = Clock()
    gate = HostGate(clock=clock)
    shared = retrier(clock=clock, gate=gate)
    run(shared, [(429, {"Retry-After": "1"}), 200])
    assert gate.rate(API) is not None
    firsts = [shared.flow("GET", f"{API}/{n}", {}) for n in range(10)]
    waits = [
        effect.seconds if isinstance(effect, Sleep) else 0.0
        for effect in (next(flow) for flow in firsts)
    ]
    assert waits == sorted(waits)
    assert waits[-1] > 0.0


def test_503_with_a_wait_pauses_the_origin_for_everyone() -> None:
    """A 503 naming a wait holds every other request to that origin, and only that origin."""
    clock = Clock()
    shared = retrier(clock=clock)
    first = shared.flow("GET", URL, {})
    next(first)
    sent = (("response", 1), None, Outcome.response(503, {"Retry-After": "10"}))
    assert first.send(sent) == Replayable()
    first.send(True)  # the body can be sent again: the decision follows
    clock.now += 4.0
    assert next(shared.flow("GET", f"{API}/other", {})) == Sleep(pytest.approx(6.0))
    assert next(shared.flow("GET", "https://elsewhere.test/", {})) == Send(None)


def test_the_gate_wait_never_passes_the_deadline() -> None:
    """A request with a 2 s deadline behind a 30 s pause waits 2 s, not 30."""
    clock = Clock()
    unbounded = retrier(clock=clock)
    bounded = retrier(clock=clock, gate=unbounded.gate, policy=Policy(deadline=2.0))
    run(unbounded, [(503, {"Retry-After": "30"}), 200])  # the clock is now past its 30 s
    paused = unbounded.flow("GET", URL, {})
    next(paused)
    paused.send((("response", 1), None, Outcome.response(503, {"Retry-After": "30"})))
    paused.send(True)
    assert next(bounded.flow("GET", URL, {})) == Sleep(2.0)
    assert next(unbounded.flow("GET", URL, {})) == Sleep(pytest.approx(30.0))


def test_gate_key_comes_from_the_gate() -> None:
    """``HostGate(key=...)`` chooses the unit the gate paces, for every request."""
    clock = Clock()
    gate = HostGate(clock=clock, key=lambda url: "everything")
    shared = retrier(clock=clock, gate=gate)
    run(shared, [(429, {}), 200])
    assert gate.rate("everything") is not None
    assert gate.rate(API) is None


def test_without_a_gate_nothing_waits_for_it() -> None:
    """With no gate only the decisions' own waits are slept."""
    shared = retrier(gate=None, policy=Policy(retry_after_jitter=0.0))
    run(shared, [(503, {"Retry-After": "30"}), 200])
    assert run(shared, [200]).effects == [Send(None)]


# -- overrides -------------------------------------------------------------------------------


def test_an_override_mapping_applies_to_that_request_only() -> None:
    """``override={"retries": False}`` sends once; the next request retries as usual."""
    shared = retrier()
    assert run(shared, [503, 200], override={"retries": False}).result == ("response", 1)
    assert run(shared, [503, 200]).result == ("response", 2)
    once = Policy(max_attempts=1)
    assert run(shared, [503, 200], override={"policy": once}).result == ("response", 1)


def test_the_overrides_block_applies_to_every_adapter() -> None:
    """``with forbear.overrides(retries=False)`` sends once; the client's own idiom wins."""
    shared = retrier()
    with forbear.overrides(retries=False):
        assert run(shared, [503, 200]).result == ("response", 1)
        two = Policy(max_attempts=2)
        assert run(shared, [503, 200], override={"policy": two}).result == ("response", 2)
    assert run(shared, [503, 200]).result == ("response", 2)


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"retry": False}, ValueError),
        ({"retries": "no"}, TypeError),
        ({"policy": {"max_attempts": 1}}, TypeError),
        (["retries"], TypeError),
    ],
)
def test_bad_overrides_are_refused_naming_where(override: Any, error: type[Exception]) -> None:
    """Unknown keys and wrong types are refused with the name the user wrote them under."""
    with pytest.raises(error, match="my-idiom"):
        run(retrier(), [200], override=override, where="my-idiom")


def test_resends_are_labelled_while_anyone_subscribes() -> None:
    """`forbear.flow.sending()` names each re-send while it is sent, only while anyone listens."""
    seen: list[forbear.flow.Sending | None] = []
    flow = retrier().flow("get", f"{URL}?token=secret", {})
    unsubscribe = forbear.subscribe(lambda event: None)
    try:
        value: Any = None
        statuses = iter([503, 503, 200])
        while True:
            try:
                effect = flow.send(value)
            except StopIteration:
                break
            value = True if isinstance(effect, Replayable) else None
            if isinstance(effect, Send):
                seen.append(forbear.flow.sending())
                value = (("response", 0), None, Outcome.response(next(statuses)))
    finally:
        unsubscribe()
    assert seen == [None, forbear.flow.Sending(2, "GET", URL), forbear.flow.Sending(3, "GET", URL)]
    assert forbear.flow.sending() is None


def test_a_flow_may_start_from_a_first_attempt_already_made() -> None:
    """``flow(sent=...)`` judges the given first attempt, then goes on with the second."""
    clock = Clock()
    shared = retrier(clock=clock, policy=Policy(deadline=5.0, retry_after_jitter=0.0))
    events: list[Event] = []
    first = (("response", 1), None, Outcome.response(503, {"Retry-After": "3"}))
    flow = shared.flow("GET", URL, {}, sent=first, started=clock.now - 2.5, on_event=events.append)
    played = play(flow, [200], clock=clock)
    assert played.sends == []  # the first attempt was made before the flow began
    assert played.result == ("response", 1)  # 2.5 s gone + 3 s wait passes the 5 s deadline
    assert [event.reason for event in events] == [Reason.DEADLINE_EXCEEDED]
    again = shared.flow("GET", URL, {}, sent=first, on_event=events.append)
    replayed = play(again, [200], clock=clock)
    assert replayed.released == [("response", 1)]
    assert replayed.sleeps == [3.0]
    assert (events[-1].attempt, events[-1].reason) == (2, Reason.SUCCESS)


def test_a_flow_started_from_a_made_attempt_re_exchanges_the_token_it_carried() -> None:
    """``sent_token`` names the token the first attempt carried: a 401 makes it stale."""
    token = TokenSource(lambda: "fresh", origins=[API], token="stale")
    first = (("response", 1), None, Outcome.response(401, {}))
    played = play(retrier(token=token).flow("GET", URL, {}, sent=first, sent_token="stale"), [200])
    assert played.sends == [{"Authorization": "Bearer fresh"}]
    assert played.result == ("response", 1)  # the first send of this play: the re-sent request
    assert token.exchanges == 1


class FixedGate:
    """A gate (by its methods) whose every slot is ``slot`` seconds away, or a `Call` for it."""

    def __init__(self, slot: float, *, call: bool = False) -> None:
        self.slot, self.call, self.keys = slot, call, list[str]()

    def delay(self, key: str) -> Any:
        self.keys.append(key)
        if self.call:
            return forbear.Call(lambda: self.slot, lambda: self.slot)  # type: ignore[arg-type,return-value]
        return self.slot

    def succeeded(self, *args: Any, **kwargs: Any) -> None:
        pass

    def observe(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.mark.parametrize("call", [False, True], ids=["in-process", "with-io"])
def test_first_slot_waits_like_the_flow_never_past_max_wait_or_the_deadline(call: bool) -> None:
    """`first_slot` takes the gate's slot for a first attempt made outside a flow, clamped."""
    clock = Clock()
    gate = FixedGate(30.0, call=call)
    capped = retrier(clock=clock, gate=gate, policy=Policy(max_wait=10.0))
    played = play(capped.first_slot(API, clock.now), [], clock=clock)
    assert played.sleeps == [10.0]
    assert [type(effect) for effect in played.effects][:1] == [
        forbear.Call if call else forbear.flow.Sleep
    ]
    late = retrier(clock=clock, gate=gate, policy=Policy(deadline=4.0))
    assert play(late.first_slot(API, clock.now - 1.0), [], clock=clock).sleeps == [3.0]
    assert play(late.first_slot(API, clock.now - 9.0), [], clock=clock).sleeps == []
    assert gate.keys == [API] * 3
    assert play(retrier(gate=None).first_slot(API, clock.now), []).effects == []


class _CountingGate:
    """A gate of its own (no ``free``): it must be asked for every send's slot."""

    key = staticmethod(forbear.origin_of)

    def __init__(self) -> None:
        self.asked: list[str] = []

    def delay(self, key: str) -> float:
        self.asked.append(key)
        return 0.0

    def succeeded(self, key: str, headers: Any, now: float) -> None:
        pass

    def observe(self, key: str, decision: Any, headers: Any = None, **kw: Any) -> None:
        pass


def test_a_gate_without_free_is_asked_before_every_first_send() -> None:
    """The runner's shortcut for first sends is taken only when the gate says it holds nothing."""
    gate = _CountingGate()
    shared = Retrier(gate=gate, budget=None)  # type: ignore[arg-type]
    assert shared.run_sync(Plain(), None, "GET", URL, {}) == "response"
    assert gate.asked == [API]


class _Readings(Plain):
    """`Plain` answering ``statuses`` in turn, read as plain tuples (`forbear.flow.Reading`)."""

    def __init__(self, statuses: Sequence[int]) -> None:
        self.statuses = list(statuses)
        self.sent = 0

    def send(self, request: object, headers: Any) -> str:
        self.sent += 1
        return "response"

    def outcome(self, response: str) -> Reading:
        return (self.statuses.pop(0), {"Retry-After": "0"}, None)


@pytest.mark.parametrize("statuses", [[200], [503, 200], [429, 503, 404]])
def test_an_adapter_may_read_outcomes_as_plain_tuples(statuses: list[int]) -> None:
    """A `Reading` is judged as the `Outcome` it holds: each attempt's event names its status
    and the request ends on the first answer the core does not retry."""
    events: list[forbear.Event] = []
    adapter = _Readings(statuses)
    shared = Retrier(gate=None, budget=None, on_event=events.append)
    assert shared.run_sync(adapter, None, "GET", URL, {}) == "response"
    assert adapter.sent == len(statuses)
    assert [event.status for event in events] == statuses


# -- a slot waited out is confirmed ----------------------------------------------------------


class _ChangingGate(FixedGate):
    """A `FixedGate` whose view changes while a send sleeps: ``confirm`` answers ``waits``
    (then 0.0), and counts how often it and ``generation`` were asked."""

    def __init__(self, slot: float, waits: Sequence[float], *, call: bool = False) -> None:
        super().__init__(slot, call=call)
        self.waits = list(waits)
        self.generations = self.confirms = 0

    def generation(self, key: str) -> int:
        self.generations += 1
        return self.generations

    def confirm(self, key: str, generation: int) -> Any:
        self.confirms += 1
        wait = self.waits.pop(0) if self.waits else 0.0
        if self.call:
            return forbear.Call(lambda: wait, lambda: wait)  # type: ignore[arg-type,return-value]
        return wait


@pytest.mark.parametrize("call", [False, True], ids=["in-process", "with-io"])
def test_a_send_woken_on_a_void_slot_waits_for_a_fresh_one(call: bool) -> None:
    """The gate's view changed while the send slept: it asks again and waits the fresh slot,
    in the flow as in `first_slot`."""
    clock = Clock()
    gate = _ChangingGate(1.0, [0.5, 0.25], call=call)
    shared = retrier(clock=clock, gate=gate)
    assert run(shared, [200]).sleeps == [1.0, 0.5, 0.25]
    assert gate.confirms == 3
    gate.waits = [0.5]
    assert play(shared.first_slot(API, clock.now), [], clock=clock).sleeps == [1.0, 0.5]


def test_confirming_never_passes_max_wait_nor_the_deadline_and_ends() -> None:
    """A gate that never confirms: the send asks again a bounded number of times, never
    waiting past ``max_wait`` in all, nor past its deadline."""
    clock = Clock()
    stubborn = _ChangingGate(3.0, [4.0] * 100)
    played = run(retrier(clock=clock, gate=stubborn, policy=Policy(max_wait=8.0)), [200])
    assert played.sleeps == [3.0, 4.0, 1.0]
    assert played.sends == [None]
    played = run(retrier(clock=clock, gate=stubborn), [200])
    assert played.sleeps == [3.0] + [4.0] * 14 + [1.0]  # max_wait (60 s) ends it
    played = run(retrier(clock=clock, gate=_ChangingGate(3.0, [0.5] * 100)), [200])
    assert played.sleeps == [3.0] + [0.5] * 32  # so does a bound on the times it asks
    played = run(retrier(clock=clock, gate=stubborn, policy=Policy(deadline=9.0)), [200])
    assert sum(played.sleeps) == pytest.approx(9.0)


def test_a_slot_not_waited_for_is_not_confirmed() -> None:
    """No sleep on a slot, nothing asked: the check costs nothing on the way to a send."""
    gate = _ChangingGate(0.0, [5.0])
    assert run(retrier(gate=gate), [200]).sleeps == []
    assert gate.confirms == gate.generations == 0


class _HorizonGate(_ChangingGate):
    """A `_ChangingGate` whose first answers to `delay` are `Again` waits (no slot behind
    them), then ``slot``."""

    def __init__(self, slot: float, agains: Sequence[float]) -> None:
        super().__init__(slot, [])
        self.agains = list(agains)

    def delay(self, key: str) -> Any:
        self.keys.append(key)
        return Again(self.agains.pop(0)) if self.agains else self.slot


@pytest.mark.parametrize("first", [False, True], ids=["flow", "first_slot"])
def test_a_wait_with_no_slot_behind_it_asks_for_a_slot_again(first: bool) -> None:
    """`Again`: after the wait, the send asks `delay` afresh (not `confirm`: it holds no slot
    a view could void), and goes on the slot it then gets, confirmed as usual."""
    clock = Clock()
    gate = _HorizonGate(0.3, [1.0, 0.25])
    shared = retrier(clock=clock, gate=gate)
    if first:
        played = play(shared.first_slot(API, clock.now), [], clock=clock)
    else:
        played = run(shared, [200])
    assert played.sleeps == [1.0, 0.25, 0.3]
    assert gate.keys == [API] * 3
    assert gate.confirms == 1  # only the slot is confirmed


def test_a_gate_without_confirm_keeps_its_slots() -> None:
    """`generation` and `confirm` are optional: a gate without them is not asked again."""
    played = run(retrier(gate=FixedGate(2.0)), [200])
    assert played.sleeps == [2.0]
    assert played.sends == [None]


def test_a_pause_heard_while_a_send_sleeps_on_its_slot_holds_it() -> None:
    """A paced origin pauses (a 503 naming 30 s) while a send sleeps on a slot given out before:
    it wakes, asks again and waits out the pause instead of going out into it."""
    clock = Clock()
    gate = HostGate(clock=clock)
    shared = retrier(clock=clock, gate=gate, policy=Policy(retry_after_jitter=0.0))
    run(shared, [(429, {"Retry-After": "1"}), 200])
    assert gate.rate(API) is not None
    sleepers = [shared.flow("GET", f"{API}/{n}", {}) for n in range(20)]
    slots = [effect for effect in (next(flow) for flow in sleepers) if isinstance(effect, Sleep)]
    last = sleepers[len(sleepers) - 1]
    assert slots and slots[-1].seconds > 0.0
    paused = forbear.Decision(
        Action.RETRY, 30.0, Reason.RETRY_AFTER, 1, status=503, retry_after=30.0
    )
    gate.observe(API, paused, {}, now=clock.now)
    clock.now += slots[-1].seconds
    again = last.send(None)
    assert isinstance(again, Sleep)
    assert again.seconds == pytest.approx(30.0 - slots[-1].seconds, abs=0.05)
