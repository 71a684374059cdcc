"""`decide`, table by table, in the order of DESIGN.md "Rules, in order".

Plain values in, plain values out: every call gets an injected monotonic ``now``, wall clock
``wall`` and a seeded ``random.Random``, so nothing sleeps, reads a clock or flakes.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Mapping

import pytest

from forbear import (
    Action,
    Backoff,
    Decision,
    ErrorKind,
    Jitter,
    Outcome,
    Policy,
    Reason,
    RetryState,
    decide,
    parse_retry_after,
)
from forbear.rules import REASONS

#: Monotonic time at which every logical request below starts.
NOW = 1_000.0
#: Wall clock: 2026-01-01T00:00:00Z, a Thursday (late enough for Unix-time reset values).
WALL = 1_767_225_600.0
DATE_IN_10S = "Thu, 01 Jan 2026 00:00:10 GMT"

DEFAULT = Policy()
#: The default policy with an exact backoff schedule: 0.25, 0.5, 1, 2, 4, 8, 10, 10, ...
EXACT = Policy(backoff=Backoff(jitter=Jitter.NONE))
#: The default policy with Retry-After honoured to the millisecond (no added jitter).
NO_RA_JITTER = Policy(retry_after_jitter=0.0)

IDEMPOTENT = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]
NOT_IDEMPOTENT = ["POST", "PATCH"]
ALL_METHODS = IDEMPOTENT + NOT_IDEMPOTENT
RETRYABLE_5XX = [500, 502, 503, 504]
NEVER_SENT = ["connect", "connect_timeout"]
MAY_HAVE_ARRIVED = ["read_timeout", "write_timeout", "disconnect", "protocol"]
KEY = {"Idempotency-Key": "3f1c0a52-0d5e-4a47-9a8e-6a3c1f2b7d10"}


def start(
    method: str = "GET",
    *,
    headers: Mapping[str, str] | None = None,
    can_reauth: bool = False,
    replayable: bool = True,
) -> RetryState:
    """A fresh logical request that started at `NOW`."""
    return RetryState.start(
        method,
        headers={} if headers is None else headers,
        can_reauth=can_reauth,
        replayable=replayable,
        now=NOW,
    )


def judge(
    outcome: Outcome,
    *,
    policy: Policy = DEFAULT,
    state: RetryState | None = None,
    now: float = NOW,
    seed: int = 0,
) -> Decision:
    """`decide` with every clock and the RNG injected."""
    return decide(
        policy,
        start() if state is None else state,
        outcome,
        now=now,
        wall=WALL,
        rng=random.Random(seed),
    )


def advance(
    state: RetryState, outcome: Outcome, times: int, policy: Policy = DEFAULT
) -> RetryState:
    """The state after ``times`` decisions on ``outcome``, each of which must be RETRY."""
    for _ in range(times):
        decision = judge(outcome, policy=policy, state=state)
        assert decision.action is Action.RETRY, decision
        state = state.next(decision)
    return state


def response(status: int, headers: Mapping[str, str] | None = None) -> Outcome:
    return Outcome.response(status, {} if headers is None else headers)


# Rule 1: success and statuses no rule names are handed back.


@pytest.mark.parametrize("status", [100, 101, 200, 201, 202, 204, 206, 301, 302, 304, 307, 308])
def test_success_statuses_are_returned(status: int) -> None:
    """A 1xx/2xx/3xx answer is handed back at once as "success", with no wait."""
    decision = judge(response(status, {"Retry-After": "5"}))
    assert decision == Decision(Action.RETURN, 0.0, "success", 1, status)


@pytest.mark.parametrize(
    "status", [400, 402, 403, 404, 405, 408, 409, 410, 413, 418, 422, 425, 451, 501, 505, 599]
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unnamed_statuses_are_returned(status: int, method: str) -> None:
    """A status no rule names is handed back as "not-retryable", even with a Retry-After."""
    decision = judge(response(status, {"Retry-After": "1"}), state=start(method))
    assert decision.action is Action.RETURN
    assert decision.reason == "not-retryable"
    assert decision.wait == 0.0


def test_unnamed_status_on_last_attempt_is_returned_not_given_up() -> None:
    """An unretryable status on the last allowed attempt is still RETURN, not GIVE_UP."""
    state = advance(start(), response(503), 4)
    assert judge(response(404), state=state).reason == "not-retryable"


def test_401_without_token_source_is_returned() -> None:
    """A 401 with no way to re-exchange the credential is handed back."""
    decision = judge(response(401))
    assert (decision.action, decision.reason) == (Action.RETURN, "not-retryable")


# Rule 2: one token re-exchange on 401.


@pytest.mark.parametrize("method", ALL_METHODS)
def test_first_401_reauths(method: str) -> None:
    """A first 401 with a token source asks for a re-exchange at once, for any method."""
    decision = judge(response(401), state=start(method, can_reauth=True))
    assert decision == Decision(Action.REAUTH, 0.0, "reauth", 1, 401)


def test_second_401_is_returned() -> None:
    """A second 401 is returned, not re-exchanged."""
    state = start(can_reauth=True)
    state = state.next(judge(response(401), state=state))
    decision = judge(response(401), state=state)
    assert decision == Decision(Action.RETURN, 0.0, "reauth-exhausted", 2, 401)


def test_reauth_resend_is_not_counted_as_an_attempt() -> None:
    """The re-send after a re-exchange counts as a send but not against max_attempts."""
    state = start(can_reauth=True).next(judge(response(401), state=start(can_reauth=True)))
    assert (state.attempts, state.reauths, state.sends) == (1, 1, 2)
    decision = judge(response(503), state=state)
    assert decision.action is Action.RETRY
    assert decision.attempt == 2


@pytest.mark.parametrize("reauth_after", [0, 1, 2, 3, 4])
def test_logical_request_sends_at_most_attempts_plus_reauths(reauth_after: int) -> None:
    """With a 401 anywhere among 503s, a request makes max_attempts + max_reauths sends."""
    state = start(can_reauth=True)
    sends = 0
    while True:
        sends += 1
        outcome = response(401) if sends == reauth_after + 1 else response(503)
        decision = judge(outcome, state=state)
        state = state.next(decision)
        if decision.action not in (Action.RETRY, Action.REAUTH):
            break
    assert sends == DEFAULT.max_attempts + DEFAULT.max_reauths == 6
    assert (decision.action, decision.reason) == (Action.GIVE_UP, "attempts-exhausted")
    assert state.sends == 6
    assert state.reauths == 1


def test_max_reauths_zero_never_reauths() -> None:
    """With max_reauths=0 even the first 401 is handed back."""
    decision = judge(response(401), policy=Policy(max_reauths=0), state=start(can_reauth=True))
    assert (decision.action, decision.reason) == (Action.RETURN, "reauth-exhausted")


def test_max_reauths_two_allows_two_exchanges() -> None:
    """max_reauths bounds the re-exchanges: two allowed, the third 401 is handed back."""
    policy = Policy(max_reauths=2)
    state = start(can_reauth=True)
    actions = []
    for _ in range(3):
        decision = judge(response(401), policy=policy, state=state)
        actions.append(decision.action)
        state = state.next(decision)
    assert actions == [Action.REAUTH, Action.REAUTH, Action.RETURN]


def test_401_in_retry_statuses_still_reauths_first() -> None:
    """A 401 listed as retryable is re-exchanged first, then handed back, never retried."""
    policy = Policy(retry_statuses=frozenset({401, 503}))
    state = start(can_reauth=True)
    first = judge(response(401), policy=policy, state=state)
    second = judge(response(401), policy=policy, state=state.next(first))
    assert (first.action, second.action) == (Action.REAUTH, Action.RETURN)


def test_401_with_one_shot_body_is_not_resent() -> None:
    """A 401 on a request whose body cannot be replayed is handed back, not re-exchanged."""
    decision = judge(response(401), state=start("POST", can_reauth=True, replayable=False))
    assert (decision.action, decision.reason) == (Action.RETURN, "body-not-replayable")


# Rule 3: retryable statuses and transport errors, when the request is safe to send again.


@pytest.mark.parametrize("status", [429, *RETRYABLE_5XX])
@pytest.mark.parametrize("method", IDEMPOTENT)
def test_idempotent_methods_retry_retryable_statuses(method: str, status: int) -> None:
    """An idempotent method is retried on 429 and on 500/502/503/504."""
    decision = judge(response(status), state=start(method))
    assert decision.action is Action.RETRY
    assert decision.reason == "backoff"
    assert decision.status == status


@pytest.mark.parametrize("status", RETRYABLE_5XX)
@pytest.mark.parametrize("method", NOT_IDEMPOTENT)
def test_unkeyed_post_patch_are_not_retried_after_5xx(method: str, status: int) -> None:
    """POST/PATCH without an Idempotency-Key may have been applied: a 5xx is handed back."""
    decision = judge(response(status), state=start(method))
    assert decision == Decision(Action.RETURN, 0.0, "not-safe-to-retry", 1, status)


@pytest.mark.parametrize("status", RETRYABLE_5XX)
@pytest.mark.parametrize("method", NOT_IDEMPOTENT)
@pytest.mark.parametrize("key_name", ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"])
def test_keyed_post_patch_are_retried_after_5xx(method: str, status: int, key_name: str) -> None:
    """POST/PATCH carrying an Idempotency-Key (any case) are retried after a 5xx."""
    state = start(method, headers={key_name: "k-1"})
    assert state.has_idempotency_key
    assert judge(response(status), state=state).action is Action.RETRY


@pytest.mark.parametrize("method", ALL_METHODS)
def test_429_is_retried_for_any_method(method: str) -> None:
    """A 429 means the server refused the request unprocessed: any method is retried."""
    assert judge(response(429), state=start(method)).action is Action.RETRY


@pytest.mark.parametrize("kind", NEVER_SENT)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_never_sent_errors_are_retried_for_any_method(method: str, kind: str) -> None:
    """connect/connect_timeout mean the server saw nothing: any method is retried."""
    decision = judge(Outcome.error(kind), state=start(method))
    assert decision.action is Action.RETRY
    assert (decision.status, decision.kind, decision.reason) == (None, ErrorKind(kind), "backoff")


@pytest.mark.parametrize("kind", MAY_HAVE_ARRIVED)
@pytest.mark.parametrize("method", IDEMPOTENT)
def test_errors_after_sending_are_retried_for_idempotent_methods(method: str, kind: str) -> None:
    """A failure that may have reached the server is retried for an idempotent method."""
    assert judge(Outcome.error(kind), state=start(method)).action is Action.RETRY


@pytest.mark.parametrize("kind", MAY_HAVE_ARRIVED)
@pytest.mark.parametrize("method", NOT_IDEMPOTENT)
def test_errors_after_sending_are_not_retried_for_unkeyed_post(method: str, kind: str) -> None:
    """A failure that may have reached the server is not retried for unkeyed POST/PATCH."""
    decision = judge(Outcome.error(kind), state=start(method))
    assert (decision.action, decision.reason) == (Action.RETURN, "not-safe-to-retry")
    assert decision.kind is ErrorKind(kind)


@pytest.mark.parametrize("kind", MAY_HAVE_ARRIVED)
@pytest.mark.parametrize("method", NOT_IDEMPOTENT)
def test_errors_after_sending_are_retried_for_keyed_post(method: str, kind: str) -> None:
    """A failure that may have reached the server is retried for POST/PATCH with a key."""
    assert judge(Outcome.error(kind), state=start(method, headers=KEY)).action is Action.RETRY


@pytest.mark.parametrize(("method", "action"), [("get", Action.RETRY), ("post", Action.RETURN)])
def test_method_case_does_not_matter(method: str, action: Action) -> None:
    """Lower-case method names are judged like upper-case ones."""
    state = start(method)
    assert state.method == method.upper()
    assert judge(response(503), state=state).action is action


@pytest.mark.parametrize(
    ("method", "headers", "outcome"),
    [
        ("GET", {}, Outcome.response(503)),
        ("GET", {}, Outcome.response(429, {"Retry-After": "1"})),
        ("PUT", {}, Outcome.error("read_timeout")),
        ("POST", {}, Outcome.error("connect")),
        ("POST", KEY, Outcome.response(500)),
        ("PATCH", {}, Outcome.response(429)),
    ],
)
def test_one_shot_bodies_are_never_resent(
    method: str, headers: dict[str, str], outcome: Outcome
) -> None:
    """A request whose body cannot be replayed is handed back, however retryable the outcome."""
    decision = judge(outcome, state=start(method, headers=headers, replayable=False))
    assert (decision.action, decision.reason) == (Action.RETURN, "body-not-replayable")
    assert decision.wait == 0.0


def test_one_shot_body_success_is_returned_as_success() -> None:
    """A one-shot body does not change how a success is judged."""
    assert judge(response(200), state=start("POST", replayable=False)).reason == "success"


def test_custom_retry_statuses_replace_the_defaults() -> None:
    """Policy.retry_statuses is the whole set: 408 added, 503 left out."""
    policy = Policy(retry_statuses=frozenset({408}))
    assert judge(response(408), policy=policy).action is Action.RETRY
    assert judge(response(503), policy=policy).reason == "not-retryable"


def test_custom_idempotent_methods_replace_the_defaults() -> None:
    """Policy.idempotent_methods is the whole set; names are compared upper-case."""
    policy = Policy(idempotent_methods=frozenset({"get", "post"}))
    assert judge(response(503), policy=policy, state=start("POST")).action is Action.RETRY
    put = judge(response(503), policy=policy, state=start("PUT"))
    assert put.reason == "not-safe-to-retry"


# Rule 4: the wait.


@pytest.mark.parametrize(
    ("value", "named"),
    [("2", 2.0), ("0.5", 0.5), ("30", 30.0), (" 7 ", 7.0), ("5, 5", 5.0), (DATE_IN_10S, 10.0)],
)
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_as_a_floor(status: int, value: str, named: float) -> None:
    """A valid Retry-After is waited in full, plus at most 10 % (at most 1 s) of jitter."""
    for seed in range(50):
        decision = judge(response(status, {"Retry-After": value}), seed=seed)
        assert (decision.action, decision.reason) == (Action.RETRY, "retry-after")
        assert decision.retry_after == named
        assert named <= decision.wait <= named + min(0.1 * named, 1.0)


def test_retry_after_jitter_spreads_waiters() -> None:
    """Different RNG draws give different waits on the same Retry-After: no lockstep."""
    waits = {judge(response(429, {"Retry-After": "4"}), seed=seed).wait for seed in range(20)}
    assert len(waits) > 10
    assert min(waits) >= 4.0
    assert max(waits) > 4.0


def test_retry_after_without_jitter_is_exact() -> None:
    """With retry_after_jitter=0 the wait is exactly the server's."""
    assert judge(response(429, {"Retry-After": "2.5"}), policy=NO_RA_JITTER).wait == 2.5


def test_retry_after_past_date_retries_at_once() -> None:
    """A Retry-After date already past is a wait of zero."""
    decision = judge(response(503, {"Retry-After": "Wed, 31 Dec 2025 23:00:00 GMT"}))
    assert (decision.action, decision.wait, decision.retry_after) == (Action.RETRY, 0.0, 0.0)


def test_retry_after_is_read_from_any_header_case() -> None:
    """The Retry-After header name is matched case-insensitively."""
    assert judge(response(429, {"retry-after": "3"}), policy=NO_RA_JITTER).wait == 3.0


#: No jitter at all: a wait named by the server and a backoff are both exact.
QUICK_LOOK = Policy(backoff=Backoff(jitter=Jitter.NONE), retry_after_jitter=0.0)


def _header_kinds(fields: list[tuple[object, str]]) -> list[object]:
    """The same fields as a plain dict and as each client's header type that is installed."""
    kinds: list[object] = [dict(fields)]
    text = [(name, value) for name, value in fields if isinstance(name, str)]
    httpx = pytest.importorskip("httpx")
    kinds.append(httpx.Headers(text))
    kinds.append(pytest.importorskip("requests.structures").CaseInsensitiveDict(text))
    kinds.append(
        pytest.importorskip("multidict").CIMultiDictProxy(
            pytest.importorskip("multidict").CIMultiDict(text)
        )
    )
    return kinds


@pytest.mark.parametrize(
    ("fields", "reason", "wait"),
    [
        ([("RETRY-AFTER", "3")], "retry-after", 3.0),
        ([(b"raw", "1"), ("rEtRy-AfTeR", "3")], "retry-after", 3.0),  # names that cannot join
        ([("Retry-After", "soon"), ("X-RATELIMIT-RESET", "7")], "rate-limit-reset", 7.0),
        ([("Content-Type", "text/plain"), ("RateLimit", '"q";r=0;t=7')], "rate-limit-reset", 7.0),
        ([("X-Retry-After-Hint", "3"), ("X-RateLimitish", "7")], "backoff", 0.25),
        (
            [("Content-Type", "text/plain"), ("Date", "Thu, 01 Jan 2026 00:00:00 GMT")],
            "backoff",
            0.25,
        ),
    ],
)
def test_a_quick_look_at_the_names_never_hides_a_wait(
    fields: list[tuple[object, str]], reason: str, wait: float
) -> None:
    """The names are looked over once before any header is read: what is there is still read,
    in any case and header type; a name merely containing another is not taken for it."""
    for headers in _header_kinds(fields):
        decision = judge(response(429, headers), policy=QUICK_LOOK)  # type: ignore[arg-type]
        assert (decision.reason, decision.wait) == (reason, wait), headers


@pytest.mark.parametrize("value", ["soon", "-1", "+1", "1e3", "nan", "", "1, 2", "\u0665"])
def test_invalid_retry_after_falls_back_to_backoff(value: str) -> None:
    """Garbage, signs, exponents, non-ASCII digits or conflicting values mean backoff."""
    decision = judge(response(503, {"Retry-After": value}), policy=EXACT)
    assert (decision.action, decision.reason, decision.wait) == (Action.RETRY, "backoff", 0.25)
    assert decision.retry_after is None


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"RateLimit-Reset": "7"}, 7.0),
        (429, {"X-RateLimit-Reset": "7"}, 7.0),
        (429, {"x-ratelimit-reset": "7"}, 7.0),
        (429, {"X-RateLimit-Reset": str(int(WALL) + 7)}, 7.0),
        (429, {"X-RateLimit-Reset": str(int(WALL) - 100)}, 0.0),
        (429, {"RateLimit": '"default";r=0;t=7'}, 7.0),
        (429, {"RateLimit": '"default";r=3;t=7'}, 7.0),
        (429, {"RateLimit": "limit=100, remaining=0, reset=7"}, 7.0),
        (503, {"RateLimit-Reset": "7", "RateLimit-Remaining": "0"}, 7.0),
        (503, {"X-RateLimit-Reset": "7", "X-RateLimit-Remaining": " 0 "}, 7.0),
        (503, {"RateLimit": '"default";r=0;t=7'}, 7.0),
        (429, {"RateLimit": '"a";r=0;t=1, "b";r=0;t=7'}, 7.0),  # the latest exhausted reset
        (429, {"X-RateLimit-Reset-After": "7", "X-RateLimit-Reset": "1"}, 7.0),
        (429, {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "7s"}, 7.0),
    ],
)
def test_rate_limit_reset_stands_in_for_retry_after(
    status: int, headers: dict[str, str], expected: float
) -> None:
    """RateLimit-Reset, X-RateLimit-Reset (delta or epoch) and RateLimit's t= name the wait."""
    decision = judge(response(status, headers), policy=NO_RA_JITTER)
    assert (decision.action, decision.reason) == (Action.RETRY, "rate-limit-reset")
    assert decision.wait == decision.retry_after == expected


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (503, {"RateLimit-Reset": "7"}),
        (503, {"X-RateLimit-Reset": "7"}),
        (503, {"X-RateLimit-Reset": "7", "X-RateLimit-Remaining": "12"}),
        (503, {"RateLimit": '"default";r=5;t=7'}),
        (503, {"RateLimit": '"default";t=7'}),
        (429, {"RateLimit-Reset": "soon"}),
        (429, {"RateLimit-Reset": "-7"}),
        (429, {"RateLimit-Reset": "1e3"}),
    ],
)
def test_rate_limit_reset_ignored_unless_exhausted_and_valid(
    status: int, headers: dict[str, str]
) -> None:
    """A reset is read only on a 429 or with nothing remaining, and only when valid."""
    decision = judge(response(status, headers), policy=EXACT)
    assert (decision.reason, decision.wait, decision.retry_after) == ("backoff", 0.25, None)


def test_retry_after_wins_over_rate_limit_reset() -> None:
    """With both present, Retry-After names the wait."""
    headers = {"Retry-After": "3", "RateLimit-Reset": "7", "X-RateLimit-Reset": "9"}
    decision = judge(response(429, headers), policy=NO_RA_JITTER)
    assert (decision.reason, decision.wait) == ("retry-after", 3.0)


def test_invalid_retry_after_falls_back_to_rate_limit_reset() -> None:
    """An invalid Retry-After counts as absent, so a valid reset is used."""
    headers = {"Retry-After": "garbage", "RateLimit-Reset": "7"}
    decision = judge(response(429, headers), policy=NO_RA_JITTER)
    assert (decision.reason, decision.wait) == ("rate-limit-reset", 7.0)


def test_rate_limit_headers_can_be_turned_off() -> None:
    """With rate_limit_headers=False only Retry-After names a wait."""
    policy = dataclasses.replace(EXACT, rate_limit_headers=False)
    decision = judge(response(429, {"RateLimit-Reset": "7"}), policy=policy)
    assert (decision.reason, decision.wait) == ("backoff", 0.25)


def test_errors_never_read_headers() -> None:
    """A transport error has no server wait: it always backs off."""
    decision = judge(Outcome.error("connect"), policy=EXACT)
    assert (decision.reason, decision.wait, decision.retry_after) == ("backoff", 0.25, None)


def waits_for(policy: Policy, count: int, seed: int = 0) -> list[float]:
    """The waits chosen for ``count`` consecutive 503s on a GET."""
    state, waits = start(), []
    rng = random.Random(seed)
    for _ in range(count):
        decision = decide(policy, state, response(503), now=NOW, wall=WALL, rng=rng)
        assert decision.action is Action.RETRY
        waits.append(decision.wait)
        state = state.next(decision)
    return waits


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        (Backoff(jitter=Jitter.NONE), [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]),
        (
            Backoff(initial=0.5, multiplier=2.0, max=4.0, jitter=Jitter.NONE),
            [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0],
        ),
        (
            Backoff(initial=1.0, multiplier=3.0, max=50.0, jitter=Jitter.NONE),
            [1.0, 3.0, 9.0, 27.0, 50.0, 50, 50, 50, 50],
        ),
        (Backoff(initial=2.0, multiplier=1.0, max=2.0, jitter=Jitter.NONE), [2.0] * 9),
        (Backoff(initial=0.0, multiplier=2.0, max=0.0, jitter=Jitter.NONE), [0.0] * 9),
        (
            Backoff(initial=0.1, multiplier=10.0, max=10.0, jitter=Jitter.NONE),
            [0.1, 1.0, 10.0, 10.0, 10, 10, 10, 10, 10],
        ),
    ],
)
def test_exact_backoff_schedule(backoff: Backoff, expected: list[float]) -> None:
    """Jitter "none" waits exactly initial * multiplier ** (n - 1), capped at Backoff.max."""
    policy = Policy(max_attempts=10, backoff=backoff)
    assert waits_for(policy, 9) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(20))
def test_full_jitter_stays_within_the_base(seed: int) -> None:
    """Full jitter draws each wait in [0, base]."""
    policy = Policy(max_attempts=10)
    bases = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    for wait, base in zip(waits_for(policy, 9, seed), bases, strict=True):
        assert 0.0 <= wait <= base


def test_full_jitter_is_random_and_seeded() -> None:
    """Full jitter varies across seeds but is repeatable for one seed."""
    policy = Policy(max_attempts=10)
    assert waits_for(policy, 9, seed=1) == waits_for(policy, 9, seed=1)
    assert waits_for(policy, 9, seed=1) != waits_for(policy, 9, seed=2)


@pytest.mark.parametrize("seed", range(20))
def test_equal_jitter_keeps_half_the_base(seed: int) -> None:
    """Equal jitter draws each wait in [base / 2, base]."""
    policy = Policy(max_attempts=10, backoff=Backoff(jitter=Jitter.EQUAL))
    bases = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    for wait, base in zip(waits_for(policy, 9, seed), bases, strict=True):
        assert base / 2 <= wait <= base


@pytest.mark.parametrize("seed", range(20))
def test_decorrelated_jitter_grows_from_the_previous_wait(seed: int) -> None:
    """Decorrelated jitter draws in [initial, 3 * previous wait], capped at Backoff.max."""
    backoff = Backoff(initial=0.25, multiplier=2.0, max=10.0, jitter=Jitter.DECORRELATED)
    waits = waits_for(Policy(max_attempts=20, backoff=backoff), 19, seed)
    previous = 0.25
    for wait in waits:
        assert 0.25 <= wait <= min(10.0, 3 * previous)
        previous = wait
    assert len(set(waits)) > 1


@pytest.mark.parametrize(
    ("backoff", "attempt", "expected"),
    [
        (Backoff(initial=0.25, multiplier=2.0, max=10.0), 0, 0.25),
        (Backoff(initial=0.25, multiplier=2.0, max=10.0), 1, 0.25),
        (Backoff(initial=0.25, multiplier=2.0, max=10.0), 6, 8.0),
        (Backoff(initial=0.25, multiplier=2.0, max=10.0), 7, 10.0),
        (Backoff(initial=0.25, multiplier=10.0, max=10.0), 10_000, 10.0),
        (Backoff(initial=0.25, multiplier=10.0, max=10.0), 10**18, 10.0),
        (Backoff(initial=1.0, multiplier=1e300, max=1e300), 3, 1e300),
        (Backoff(initial=1e-300, multiplier=1.0000001, max=1e300), 10**11, 1e300),
        (Backoff(initial=5e-324, multiplier=2.0, max=10.0), 2_000, 10.0),
        (Backoff(initial=0.5, multiplier=2.0, max=4.0), 4, 4.0),
        (Backoff(initial=0.5, multiplier=2.0, max=4.0), 3, 2.0),
    ],
)
def test_backoff_base_is_overflow_safe(backoff: Backoff, attempt: int, expected: float) -> None:
    """The un-jittered base is capped, however large the attempt number or multiplier."""
    assert backoff.base(attempt) == pytest.approx(expected)


def test_huge_attempt_number_waits_the_cap() -> None:
    """Attempt 10 000 with multiplier 10 waits Backoff.max, not inf, and does not raise."""
    policy = Policy(
        max_attempts=20_000,
        backoff=Backoff(initial=0.25, multiplier=10.0, max=10.0, jitter=Jitter.NONE),
    )
    state = start()._replace(attempts=10_000)
    decision = judge(response(503), policy=policy, state=state)
    assert (decision.action, decision.wait) == (Action.RETRY, 10.0)


def test_backoff_is_capped_at_max_wait() -> None:
    """A backoff step longer than Policy.max_wait waits max_wait rather than giving up."""
    policy = Policy(max_attempts=10, max_wait=3.0, backoff=Backoff(jitter=Jitter.NONE))
    assert waits_for(policy, 8) == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]


# Rule 5: giving up.


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome.response(503),
        Outcome.response(429, {"Retry-After": "1"}),
        Outcome.error("connect"),
        Outcome.error("read_timeout"),
    ],
)
def test_max_attempts_gives_up(outcome: Outcome) -> None:
    """After max_attempts sends (default 5) a retryable outcome gives up with no wait."""
    state = advance(start(), outcome, 4)
    assert state.attempts == 5
    decision = judge(outcome, state=state)
    assert decision.action is Action.GIVE_UP
    assert (decision.reason, decision.wait, decision.attempt) == ("attempts-exhausted", 0.0, 5)


def test_one_attempt_policy_gives_up_at_once() -> None:
    """max_attempts=1 means no retry at all."""
    decision = judge(response(503), policy=Policy(max_attempts=1))
    assert (decision.action, decision.reason) == (Action.GIVE_UP, "attempts-exhausted")


def test_give_up_keeps_the_servers_wait() -> None:
    """A give-up still reports the wait the server named, for the caller's error."""
    state = advance(start(), response(503), 4)
    decision = judge(response(429, {"Retry-After": "2"}), state=state)
    assert (decision.action, decision.retry_after) == (Action.GIVE_UP, 2.0)


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"Retry-After": "60.001"}, 60.001),
        ({"Retry-After": "Thu, 01 Jan 2026 01:00:00 GMT"}, 3600.0),
        ({"RateLimit-Reset": "3600"}, 3600.0),
        ({"Retry-After": "9" * 50}, 1e9),
    ],
)
def test_wait_over_max_wait_gives_up(headers: dict[str, str], named: float) -> None:
    """A server asking for longer than max_wait (60 s) gets a prompt give-up, not a hang."""
    decision = judge(response(429, headers))
    assert decision.action is Action.GIVE_UP
    assert (decision.reason, decision.wait) == ("wait-exceeds-max", 0.0)
    assert decision.retry_after == pytest.approx(named)


def test_wait_equal_to_max_wait_is_honoured() -> None:
    """A Retry-After of exactly max_wait is waited, jitter trimmed to stay within max_wait."""
    for seed in range(20):
        decision = judge(response(429, {"Retry-After": "60"}), seed=seed)
        assert (decision.action, decision.wait) == (Action.RETRY, 60.0)


def test_jitter_never_pushes_past_max_wait() -> None:
    """Jitter on a Retry-After near max_wait is trimmed to max_wait, never past it."""
    for seed in range(50):
        decision = judge(response(429, {"Retry-After": "59.5"}), seed=seed)
        assert 59.5 <= decision.wait <= 60.0


@pytest.mark.parametrize(
    ("elapsed", "action"),
    [(0.0, Action.RETRY), (3.9, Action.RETRY), (4.0, Action.RETRY), (4.1, Action.GIVE_UP)],
)
def test_deadline_bounds_the_whole_request(elapsed: float, action: Action) -> None:
    """A retry whose wait would end past Policy.deadline gives up instead."""
    policy = Policy(deadline=5.0, retry_after_jitter=0.0)
    decision = judge(response(503, {"Retry-After": "1"}), policy=policy, now=NOW + elapsed)
    assert decision.action is action
    if action is Action.GIVE_UP:
        assert (decision.reason, decision.wait, decision.retry_after) == (
            "deadline-exceeded",
            0.0,
            1.0,
        )


def test_deadline_applies_to_backoff_too() -> None:
    """The deadline counts backoff waits as well as server-named ones."""
    policy = Policy(deadline=5.0, backoff=Backoff(jitter=Jitter.NONE))
    assert judge(response(503), policy=policy, now=NOW + 4.75).action is Action.RETRY
    late = judge(response(503), policy=policy, now=NOW + 4.8)
    assert (late.action, late.reason) == (Action.GIVE_UP, "deadline-exceeded")


def test_no_deadline_ignores_elapsed_time() -> None:
    """Without a deadline, a request a day old is still retried."""
    assert judge(response(503), now=NOW + 86_400).action is Action.RETRY


def test_deadline_reads_the_monotonic_clock_by_default() -> None:
    """Without ``now``, the deadline is judged against time.monotonic()."""
    policy = Policy(deadline=60.0)
    old = RetryState.start("GET", headers={}, now=time.monotonic() - 3_600)
    fresh = RetryState.start("GET", headers={})
    assert decide(policy, old, response(503)).reason == "deadline-exceeded"
    assert decide(policy, fresh, response(503)).action is Action.RETRY


# History, notes and purity.


def test_history_grows_on_every_next() -> None:
    """Every `next` appends its decision, whatever the action; attempts move only on RETRY."""
    state = start(can_reauth=True)
    steps = [response(401), response(503), Outcome.error("connect"), response(200)]
    for count, outcome in enumerate(steps, 1):
        decision = judge(outcome, state=state)
        previous = state
        state = state.next(decision)
        assert state.history == (*previous.history, decision)
        assert len(state.history) == count
    assert [d.action for d in state.history] == [
        Action.REAUTH,
        Action.RETRY,
        Action.RETRY,
        Action.RETURN,
    ]
    assert (state.attempts, state.reauths, state.sends) == (3, 1, 4)


def test_next_does_not_change_the_old_state() -> None:
    """`next` returns a new state; the old one is unchanged and frozen."""
    state = start()
    decision = judge(response(503), state=state)
    following = state.next(decision)
    assert following is not state
    assert (state.attempts, state.history, state.last_wait) == (1, (), 0.0)
    assert (following.attempts, following.last_wait) == (2, decision.wait)
    with pytest.raises(AttributeError):
        state.attempts = 9  # type: ignore[misc]


def test_note_lists_the_history_without_header_values() -> None:
    """The exception note names statuses, actions and waits, never a header value."""
    secret_request = {"Idempotency-Key": "idem-SECRET-1", "Authorization": "Bearer SECRET-tok"}
    state = start("POST", headers=secret_request)
    secret_response = {"Retry-After": "2", "Set-Cookie": "session=SECRET-cookie"}
    for outcome in [response(429, secret_response), Outcome.error("connect"), response(403)]:
        state = state.next(judge(outcome, state=state))
    note = state.note()
    assert "SECRET" not in note
    assert "Bearer" not in note
    assert note.startswith("forbear: POST made 3 send(s): ")
    assert "#1 429: retry (retry-after) after 2." in note
    assert "#2 connect: retry (backoff)" in note
    assert note.endswith("#3 403: return (not-retryable)")


def test_describe_formats_one_decision() -> None:
    """`Decision.describe` gives one short line; the wait only for RETRY."""
    assert Decision(Action.RETRY, 0.25, "backoff", 2, 503).describe() == (
        "#2 503: retry (backoff) after 0.250s"
    )
    assert Decision(Action.GIVE_UP, 0.0, "attempts-exhausted", 5, 503).describe() == (
        "#5 503: give-up (attempts-exhausted)"
    )
    error = Decision(Action.RETURN, 0.0, "not-safe-to-retry", 1, None, ErrorKind.PROTOCOL)
    assert error.describe() == "#1 protocol: return (not-safe-to-retry)"


def test_decide_is_pure() -> None:
    """The same inputs give the same decision, and decide changes neither policy nor state."""
    policy, state = Policy(), start()
    outcome = response(429, {"Retry-After": "3"})
    first = decide(policy, state, outcome, now=NOW, wall=WALL, rng=random.Random(7))
    second = decide(policy, state, outcome, now=NOW, wall=WALL, rng=random.Random(7))
    assert first == second
    assert state == start()
    assert policy == Policy()


def test_defaults_read_the_real_clocks() -> None:
    """Without now, wall or rng, decide still answers within the rules."""
    decision = decide(Policy(), start(), response(503))
    assert decision.action is Action.RETRY
    assert 0.0 <= decision.wait <= 0.25


def test_outcome_error_accepts_values_and_rejects_unknown_kinds() -> None:
    """`Outcome.error` takes an ErrorKind or its value; an unknown kind is a ValueError."""
    assert Outcome.error("connect") == Outcome.error(ErrorKind.CONNECT)
    assert Outcome.error("connect") == Outcome(None, {}, ErrorKind.CONNECT)
    with pytest.raises(ValueError):
        Outcome.error("timeout")


def test_outcome_response_defaults_to_no_headers() -> None:
    """`Outcome.response` without headers has an empty mapping."""
    assert Outcome.response(200) == Outcome(200, {}, None)


#: One scenario per reason `decide` gives; "budget-exhausted" belongs to the driver's budget.
REASON_SCENARIOS: dict[str, tuple[Policy, RetryState, Outcome]] = {
    "success": (DEFAULT, start(), response(200)),
    "not-retryable": (DEFAULT, start(), response(404)),
    "reauth": (DEFAULT, start(can_reauth=True), response(401)),
    "reauth-exhausted": (Policy(max_reauths=0), start(can_reauth=True), response(401)),
    "not-safe-to-retry": (DEFAULT, start("POST"), response(503)),
    "body-not-replayable": (DEFAULT, start(replayable=False), response(503)),
    "retry-after": (DEFAULT, start(), response(429, {"Retry-After": "1"})),
    "rate-limit-reset": (DEFAULT, start(), response(429, {"RateLimit-Reset": "1"})),
    "backoff": (DEFAULT, start(), response(503)),
    "attempts-exhausted": (Policy(max_attempts=1), start(), response(503)),
    "wait-exceeds-max": (DEFAULT, start(), response(429, {"Retry-After": "61"})),
    "deadline-exceeded": (Policy(deadline=0.0), start(), response(503, {"Retry-After": "1"})),
}


@pytest.mark.parametrize("reason", sorted(REASON_SCENARIOS))
def test_every_reason_is_documented_and_reachable(reason: str) -> None:
    """Each reason slug decide gives is listed in REASONS and produced by its scenario."""
    policy, state, outcome = REASON_SCENARIOS[reason]
    assert judge(outcome, policy=policy, state=state).reason == reason
    assert reason in REASONS


def test_reasons_table_has_no_unreachable_entries() -> None:
    """REASONS lists exactly the slugs above plus the driver's budget-exhausted."""
    assert set(REASONS) == {*REASON_SCENARIOS, "budget-exhausted"}


# -- round 2: budget admission, empty keys, repeated dates --------------------------------------


def test_budget_admission_is_part_of_the_decision() -> None:
    """A refused admission gives up ``budget-exhausted``; a 429 never asks the budget."""
    asked: list[int] = []

    def refuse() -> bool:
        asked.append(1)
        return False

    state = RetryState.start("GET", headers={}, now=0.0)
    spent = decide(Policy(), state, Outcome.response(503), now=0.0, admit=refuse)
    assert (spent.action, spent.reason, spent.wait) == (
        Action.GIVE_UP,
        Reason.BUDGET_EXHAUSTED,
        0.0,
    )
    assert asked == [1]
    limited = decide(Policy(), state, Outcome.response(429), now=0.0, admit=refuse)
    assert limited.action is Action.RETRY
    assert asked == [1]


def test_admission_is_asked_only_for_a_retry_every_other_rule_allows() -> None:
    """Out of attempts, the budget is not asked (and so not spent)."""
    state = RetryState.start("GET", headers={}, now=0.0)._replace(attempts=5)

    def must_not_be_asked() -> bool:
        raise AssertionError("asked")

    decision = decide(Policy(), state, Outcome.response(503), now=0.0, admit=must_not_be_asked)
    assert decision.reason is Reason.ATTEMPTS_EXHAUSTED


@pytest.mark.parametrize("value", ["", "  ", ","])
def test_an_empty_idempotency_key_does_not_make_a_post_safe(value: str) -> None:
    """``Idempotency-Key: ""`` keys nothing: the POST is not re-sent after a 503."""
    state = RetryState.start("POST", headers={"Idempotency-Key": value}, now=0.0)
    assert state.has_idempotency_key is False
    decision = decide(Policy(), state, Outcome.response(503), now=0.0)
    assert decision.reason is Reason.NOT_SAFE_TO_RETRY


@pytest.mark.parametrize("separator", [", ", ","])
def test_two_identical_http_dates_are_one_wait(separator: str) -> None:
    """A ``Retry-After`` repeated with the same HTTP-date is that date, not a conflict."""
    date = "Sun, 06 Nov 1994 08:49:37 GMT"
    wall = 784_111_767.0
    assert parse_retry_after(separator.join([date, date]), wall=wall) == 10.0
    assert parse_retry_after(f"{date}, Sun, 06 Nov 1994 08:49:38 GMT", wall=wall) is None


def test_a_dated_wait_is_marked_for_the_gate() -> None:
    """An HTTP-date wait is ``dated``; a delta is not."""
    state = RetryState.start("GET", headers={}, now=0.0)
    date = "Sun, 06 Nov 1994 08:49:37 GMT"
    dated = decide(
        Policy(), state, Outcome.response(503, {"Retry-After": date}), now=0.0, wall=784_111_767.0
    )
    delta = decide(Policy(), state, Outcome.response(503, {"Retry-After": "10"}), now=0.0)
    assert (dated.dated, delta.dated) == (True, False)


def test_reasons_are_an_enum_whose_values_are_the_slugs() -> None:
    """Every reason is a `Reason`; its value, str and format are the stable slug."""
    assert {reason.value for reason in Reason} == set(REASONS)
    assert str(Reason.RETRY_AFTER) == f"{Reason.RETRY_AFTER}" == "retry-after"
    assert Reason.SUCCESS == "success"


@pytest.mark.parametrize(
    ("headers", "source", "dated"),
    [
        ({"Retry-After": "7"}, "retry-after", False),
        ({"RateLimit": '"default";r=0;t=7'}, "ratelimit", False),
        ({"RateLimit-Reset": "7"}, "ratelimit-reset", False),
        ({"X-RateLimit-Reset": str(int(WALL) + 7)}, "x-ratelimit-reset", True),
        ({"X-RateLimit-Reset": str((int(WALL) + 7) * 1000)}, "x-ratelimit-reset", True),
        (
            {"X-RateLimit-Reset-After": "7", "X-RateLimit-Reset": "1"},
            "x-ratelimit-reset-after",
            False,
        ),
        (
            {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "7s"},
            "x-ratelimit-reset-requests",
            False,
        ),
    ],
)
def test_the_decision_names_the_header_its_wait_came_from(
    headers: dict[str, str], source: str, dated: bool
) -> None:
    """``Decision.source`` is the header the wait came from; ``dated`` an absolute reset."""
    decision = judge(response(429, headers), policy=NO_RA_JITTER)
    assert (decision.source, decision.dated, decision.retry_after) == (source, dated, 7.0)
    if decision.reason == "rate-limit-reset":
        assert f"(rate-limit-reset from {source})" in decision.describe()


def test_backoff_names_no_header() -> None:
    """Without a server-named wait there is no source."""
    decision = judge(response(503, {}), policy=EXACT)
    assert (decision.reason, decision.source, decision.dated) == ("backoff", None, False)
