"""`Retrier` and `RetryCall`: the sans-IO driver adapters loop around.

Each test plays the adapter: it asks the call for headers and gate waits, reports what a
(pretend) server answered, and asserts on the decisions and on the shared pieces the call
consulted. Clocks, wall time and the jitter RNG are injected, so nothing sleeps.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence

import pytest

from forbear import (
    Action,
    Decision,
    ErrorKind,
    HostGate,
    Policy,
    Retrier,
    RetryBudget,
    RetryCall,
    TokenSource,
)

API = "https://api.example.test"
URL = f"{API}/v1/items"
WALL = 784_111_767.0  # ten seconds before the date below
DATE_IN_10S = "Sun, 06 Nov 1994 08:49:37 GMT"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def retrier(**options: object) -> Retrier:
    """A retrier on an injected clock, wall clock and seeded RNG."""
    options.setdefault("clock", Clock())
    options.setdefault("wall", lambda: WALL)
    options.setdefault("rng", random.Random(1))
    return Retrier(**options)  # type: ignore[arg-type]


def drive(call: RetryCall, answers: Sequence[int | str]) -> list[Decision]:
    """Play the adapter loop over scripted answers (a status, or an error kind) until it ends."""
    decisions: list[Decision] = []
    for answer in answers:
        call.gate_delay()
        call.auth_sync()
        if isinstance(answer, int):
            decision = call.on_response(answer, {})
        else:
            decision = call.on_error(answer)
        decisions.append(decision)
        if decision.action is Action.REAUTH:
            call.reauth_sync()
        elif decision.action is not Action.RETRY:
            break
    return decisions


# -- construction ----------------------------------------------------------------------------


def test_policy_must_be_a_policy() -> None:
    """Anything but a `Policy` as the policy is refused at once."""
    with pytest.raises(TypeError, match=r"forbear\.Policy"):
        Retrier(policy={"max_attempts": 3})  # type: ignore[arg-type]


def test_defaults_share_a_gate_and_budget_per_retrier() -> None:
    """By default each retrier has its own gate and budget; False or None goes without."""
    default = Retrier()
    assert isinstance(default.gate, HostGate)
    assert isinstance(default.budget, RetryBudget)
    assert Retrier().gate is not default.gate
    bare = Retrier(gate=False, budget=None)
    assert (bare.gate, bare.budget) == (None, None)
    shared = HostGate()
    assert Retrier(gate=shared).gate is Retrier(gate=shared).gate is shared


def test_repr() -> None:
    """Reprs name the method and the sends made so far."""
    call = retrier().begin("get", URL, {})
    assert repr(call) == "RetryCall(GET attempt=1)"
    call.on_response(503, {})
    assert repr(call) == "RetryCall(GET attempt=2)"
    assert repr(retrier()).startswith("Retrier(policy=Policy(")


# -- idempotency keys and request ids --------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH", "post"])
def test_idempotency_key_added_to_post_and_patch(method: str) -> None:
    """POST and PATCH without a key get a UUID ``Idempotency-Key``, the same on every attempt."""
    call = retrier(idempotency_keys=True).begin(method, URL, {})
    key = call.headers()["Idempotency-Key"]
    assert str(uuid.UUID(key)) == key
    decisions = drive(call, [503, "read_timeout", 502, 200])
    assert [d.action for d in decisions] == [Action.RETRY] * 3 + [Action.RETURN]
    assert call.headers()["Idempotency-Key"] == key


def test_each_logical_request_gets_its_own_key() -> None:
    """Two logical requests never share an idempotency key."""
    shared = retrier(idempotency_keys=True)
    first = shared.begin("POST", URL, {}).headers()["Idempotency-Key"]
    second = shared.begin("POST", URL, {}).headers()["Idempotency-Key"]
    assert first != second


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"])
def test_no_key_for_other_methods(method: str) -> None:
    """Methods other than POST and PATCH get no idempotency key."""
    assert retrier(idempotency_keys=True).begin(method, URL, {}).headers() == {}


@pytest.mark.parametrize("name", ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"])
def test_caller_key_is_kept_and_makes_post_retryable(name: str) -> None:
    """A key the caller set (any case) is not replaced, and the POST may be re-sent."""
    call = retrier(idempotency_keys=True).begin("POST", URL, {name: "caller-key"})
    assert call.headers() == {}
    assert call.on_response(503, {}).action is Action.RETRY


def test_without_the_option_post_is_not_retried_after_a_5xx() -> None:
    """With keys off, a POST that may have reached the server is handed back, not re-sent."""
    call = retrier().begin("POST", URL, {})
    assert call.headers() == {}
    decision = call.on_response(503, {})
    assert (decision.action, decision.reason) == (Action.RETURN, "not-safe-to-retry")


def test_request_id_added_once_per_logical_request() -> None:
    """``X-Request-Id`` is a UUID, the same on every attempt, new for the next request."""
    shared = retrier(request_ids=True)
    call = shared.begin("GET", URL, {})
    sent = call.headers()["X-Request-Id"]
    assert str(uuid.UUID(sent)) == sent
    drive(call, [503, 503, 200])
    assert call.headers()["X-Request-Id"] == sent
    assert shared.begin("GET", URL, {}).headers()["X-Request-Id"] != sent


def test_caller_request_id_is_not_replaced() -> None:
    """A request that already carries ``X-Request-Id`` gets no second one."""
    call = retrier(request_ids=True).begin("GET", URL, {"X-Request-Id": "mine"})
    assert call.headers() == {}


# -- the budget --------------------------------------------------------------------------------


def test_spent_budget_gives_up_with_budget_exhausted() -> None:
    """A retry the budget cannot pay for becomes GIVE_UP ``budget-exhausted``, wait 0."""
    clock = Clock()
    call = retrier(clock=clock, budget=RetryBudget(ratio=0.0, min_per_second=0.0)).begin(
        "GET", URL, {}
    )
    decision = call.on_response(503, {"Retry-After": "2"})
    assert (decision.action, decision.reason, decision.wait) == (
        Action.GIVE_UP,
        "budget-exhausted",
        0.0,
    )
    assert decision.retry_after == 2.0
    assert call.history == (decision,)


def test_429_retries_do_not_spend_the_budget() -> None:
    """Rate limits are the gate's business: a 429 is retried even with the budget spent."""
    budget = RetryBudget(ratio=0.0, min_per_second=0.0)
    call = retrier(budget=budget).begin("GET", URL, {})
    assert call.on_response(429, {"Retry-After": "1"}).action is Action.RETRY
    assert call.on_response(503, {}).reason == "budget-exhausted"


def test_each_logical_request_deposits_and_only_retries_withdraw() -> None:
    """A request deposits once when it begins; RETURN and REAUTH cost nothing, RETRY one."""
    clock = Clock()
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, clock=clock)
    token = TokenSource(lambda: "t1", origins=[API], token="t0")
    shared = retrier(clock=clock, budget=budget, token=token)
    call = shared.begin("GET", URL, {})
    assert budget.balance() == 1.0
    assert [d.action for d in drive(call, [401, 503, 503])] == [
        Action.REAUTH,
        Action.RETRY,
        Action.GIVE_UP,
    ]
    assert call.history[-1].reason == "budget-exhausted"
    shared.begin("GET", URL, {}).on_response(200, {})
    assert budget.balance() == 1.0


def test_default_budget_follows_the_injected_clock() -> None:
    """The retrier's own budget reads the retrier's clock: spent now, refilled after ``ttl``."""
    clock = Clock()
    shared = retrier(clock=clock)
    granted = sum(
        shared.begin("GET", URL, {}).on_error("connect").action is Action.RETRY for _ in range(150)
    )
    assert granted == 130  # the floor (10/s over 10 s) plus 20 % of 150 first attempts
    assert shared.begin("GET", URL, {}).on_error("connect").reason == "budget-exhausted"
    clock.now += 11.0
    assert shared.begin("GET", URL, {}).on_error("connect").action is Action.RETRY


# -- the gate --------------------------------------------------------------------------------


def test_429_is_observed_by_the_gate_and_paces_later_sends() -> None:
    """After a 429 the origin is paced: a crowd of later sends waits its turn."""
    clock = Clock()
    gate = HostGate(clock=clock)
    shared = retrier(clock=clock, gate=gate)
    assert shared.begin("GET", URL, {}).gate_delay() == 0.0
    shared.begin("GET", URL, {}).on_response(429, {"Retry-After": "1"})
    assert gate.rate(API) is not None
    waits = [shared.begin("GET", f"{API}/{n}", {}).gate_delay() for n in range(10)]
    assert waits[0] == 0.0
    assert waits == sorted(waits)
    assert waits[-1] > 0.0


def test_503_with_a_wait_pauses_the_origin_for_everyone() -> None:
    """A 503 naming a wait holds every other request to that origin, and only that origin."""
    clock = Clock()
    shared = retrier(clock=clock)
    call = shared.begin("GET", URL, {})
    decision = call.on_response(503, {"Retry-After": "10"})
    assert decision.action is Action.RETRY
    assert decision.wait >= 10.0
    clock.now += 4.0
    assert shared.begin("GET", f"{API}/other", {}).gate_delay() == pytest.approx(6.0)
    assert shared.begin("GET", "https://elsewhere.test/", {}).gate_delay() == 0.0


def test_gate_key_may_be_overridden_per_request_or_per_gate() -> None:
    """``begin(key=...)`` and ``HostGate(key=...)`` choose the unit the gate paces."""
    clock = Clock()
    gate = HostGate(clock=clock, key=lambda url: "everything")
    shared = retrier(clock=clock, gate=gate)
    call = shared.begin("GET", URL, {})
    assert call.key == "everything"
    call.on_response(429, {})
    assert gate.rate("everything") is not None
    assert gate.rate(API) is None
    tenant = shared.begin("GET", URL, {}, key="tenant-7")
    assert tenant.key == "tenant-7"
    tenant.on_response(429, {})
    assert gate.rate("tenant-7") is not None


def test_without_a_gate_nothing_waits() -> None:
    """With no gate every gate delay is zero and the key is still the origin."""
    shared = retrier(gate=None)
    call = shared.begin("GET", f"{URL}?q=1", {})
    call.on_response(503, {"Retry-After": "30"})
    assert shared.begin("GET", URL, {}).gate_delay() == 0.0
    assert call.key == API


# -- history, clocks and determinism -----------------------------------------------------------


def test_history_records_every_decision() -> None:
    """History holds each decision in order, and the note lists them without header values."""
    call = retrier().begin("GET", URL, {})
    decisions = drive(call, [503, "connect", 200])
    assert call.history == tuple(decisions)
    assert [d.attempt for d in call.history] == [1, 2, 3]
    assert call.state.history == call.history
    note = call.note()
    assert note.startswith("forbear: GET made 3 send(s): #1 503: retry (backoff) after ")
    assert note.endswith("#3 200: return (success)")


def test_history_of_a_first_attempt_success() -> None:
    """Even a first-attempt success is in the history."""
    call = retrier().begin("GET", URL, {})
    decision = call.on_response(200, {})
    assert call.history == (decision,)


def test_sends_never_exceed_attempts_plus_reauths() -> None:
    """A request refused forever makes ``max_attempts + max_reauths`` sends, then gives up."""
    token = TokenSource(lambda: "fresh", origins=[API], token="stale")
    call = retrier(token=token, policy=Policy(max_attempts=3)).begin("GET", URL, {})
    decisions = drive(call, [401] + [503] * 10)
    assert [d.action for d in decisions] == [
        Action.REAUTH,
        Action.RETRY,
        Action.RETRY,
        Action.GIVE_UP,
    ]
    assert decisions[-1].reason == "attempts-exhausted"
    assert call.state.sends == 4


def test_same_rng_seed_same_waits() -> None:
    """The injected RNG makes jittered waits reproducible."""

    def waits(seed: int) -> list[float]:
        call = retrier(rng=random.Random(seed)).begin("GET", URL, {})
        return [d.wait for d in drive(call, [503, 503, 503, 503, 200])]

    assert waits(5) == waits(5)
    assert waits(5) != waits(6)


def test_deadline_counts_on_the_injected_clock() -> None:
    """``Policy.deadline`` is measured from the first send on the retrier's clock."""
    clock = Clock()
    policy = Policy(deadline=1.0, retry_after_jitter=0.0)
    early = retrier(clock=clock, policy=policy).begin("GET", URL, {})
    late = retrier(clock=clock, policy=policy).begin("GET", URL, {})
    clock.now += 0.4
    assert early.on_response(503, {"Retry-After": "0.5"}).action is Action.RETRY
    clock.now += 0.5
    decision = late.on_response(503, {"Retry-After": "0.5"})
    assert (decision.action, decision.reason) == (Action.GIVE_UP, "deadline-exceeded")


def test_http_date_is_read_against_the_injected_wall_clock() -> None:
    """An HTTP-date ``Retry-After`` is turned into seconds from the retrier's wall clock."""
    call = retrier(policy=Policy(retry_after_jitter=0.0)).begin("GET", URL, {})
    decision = call.on_response(503, {"Retry-After": DATE_IN_10S})
    assert (decision.action, decision.wait, decision.retry_after) == (Action.RETRY, 10.0, 10.0)


def test_policy_may_be_overridden_per_request() -> None:
    """``begin(policy=...)`` applies to that request only."""
    shared = retrier()
    once = shared.begin("GET", URL, {}, policy=Policy(max_attempts=1))
    assert once.on_response(503, {}).reason == "attempts-exhausted"
    assert shared.begin("GET", URL, {}).on_response(503, {}).action is Action.RETRY


def test_one_shot_body_is_never_resent() -> None:
    """A request whose body cannot be replayed is handed back after its first answer."""
    call = retrier().begin("PUT", URL, {}, replayable=False)
    assert call.on_response(503, {}).reason == "body-not-replayable"


@pytest.mark.parametrize("kind", [ErrorKind.CONNECT, "connect"])
def test_error_kinds_by_enum_or_value(kind: ErrorKind | str) -> None:
    """``on_error`` takes an `ErrorKind` or its value; an unknown kind is refused."""
    decision = retrier().begin("POST", URL, {}).on_error(kind)
    assert (decision.action, decision.kind) == (Action.RETRY, ErrorKind.CONNECT)
    with pytest.raises(ValueError):
        retrier().begin("GET", URL, {}).on_error("gremlins")
