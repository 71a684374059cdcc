"""`forbear.profiles`: one policy per seed API, checked against each row of its status table.

The seeds are the partner API (X-API-Key), the policy/validation API (bearer keys with scopes)
and the Sarucci API (bearer tokens from an exchange). Their tables are encoded here as rows.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from forbear import Action, Decision, Jitter, Outcome, Policy, RetryState, decide, profiles

NOW = 50.0
WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def start(method: str = "GET", *, can_reauth: bool = False, key: bool = False) -> RetryState:
    headers = {"Idempotency-Key": "e7b1c2"} if key else {}
    return RetryState.start(method, headers=headers, can_reauth=can_reauth, now=NOW)


def judge(policy: Policy, outcome: Outcome, state: RetryState, seed: int = 0) -> Decision:
    return decide(policy, state, outcome, now=NOW, wall=WALL, rng=random.Random(seed))


def run(
    policy: Policy, outcomes: list[Outcome], state: RetryState, seed: int = 0
) -> list[Decision]:
    """The decisions for a scripted series of outcomes, stopping at the first final one."""
    decisions = []
    for outcome in outcomes:
        decision = judge(policy, outcome, state, seed)
        decisions.append(decision)
        state = state.next(decision)
        if decision.action in (Action.RETURN, Action.GIVE_UP):
            break
    return decisions


def response(status: int, headers: dict[str, str] | None = None) -> Outcome:
    return Outcome.response(status, headers or {})


# Seed 000: the partner API.


@pytest.mark.parametrize(
    ("status", "method", "action", "reason"),
    [
        (200, "GET", Action.RETURN, "success"),
        (201, "POST", Action.RETURN, "success"),
        (400, "POST", Action.RETURN, "not-retryable"),  # "After fixing the request"
        (403, "GET", Action.RETURN, "not-retryable"),  # "No - wrong key tier or scope"
        (404, "GET", Action.RETURN, "not-retryable"),  # "No"
        (410, "PUT", Action.RETURN, "not-retryable"),  # "No - start over"
        (422, "POST", Action.RETURN, "not-retryable"),  # "Depends on cause": not ours to guess
        (429, "POST", Action.RETRY, "retry-after"),  # "Yes, after Retry-After"
        (500, "GET", Action.RETRY, "backoff"),  # "Yes, with backoff"
        (500, "POST", Action.RETURN, "not-safe-to-retry"),  # may have been applied
    ],
)
def test_partner_api_status_table(status: int, method: str, action: Action, reason: str) -> None:
    """The partner API profile follows each row of seed 000's status table."""
    headers = {"Retry-After": "3"} if status == 429 else {}
    decision = judge(profiles.partner_api, response(status, headers), start(method))
    assert (decision.action, decision.reason) == (action, reason)


@pytest.mark.parametrize("can_reauth", [False, True])
def test_partner_api_401_is_returned(can_reauth: bool) -> None:
    """An invalid API key is handed back: an API key is not re-exchanged ("After fixing")."""
    decision = judge(profiles.partner_api, response(401), start(can_reauth=can_reauth))
    assert decision.action is Action.RETURN


def test_partner_api_429_waits_the_retry_after_in_full() -> None:
    """A 429 waits at least its Retry-After ("retry after the seconds given"), never less."""
    for seed in range(20):
        decision = judge(profiles.partner_api, response(429, {"Retry-After": "3"}), start(), seed)
        assert 3.0 <= decision.wait <= 3.3
        assert decision.retry_after == 3.0


def test_partner_api_500_backs_off_then_gives_up() -> None:
    """A persistent 500 is retried with growing backoff, then given up after 5 attempts."""
    decisions = run(profiles.partner_api, [response(500)] * 10, start())
    assert [d.action for d in decisions] == [Action.RETRY] * 4 + [Action.GIVE_UP]
    for attempt, decision in enumerate(decisions[:4], 1):
        assert 0.0 <= decision.wait <= 0.25 * 2 ** (attempt - 1)


# Seed 001: the policy/validation API.


@pytest.mark.parametrize(
    ("status", "method", "action", "reason"),
    [
        (200, "POST", Action.RETURN, "success"),  # allowed: false is still a 200
        (400, "POST", Action.RETURN, "not-retryable"),
        (403, "GET", Action.RETURN, "not-retryable"),
        (404, "GET", Action.RETURN, "not-retryable"),
        (409, "POST", Action.RETURN, "not-retryable"),  # Idempotency-Key collision
        (429, "POST", Action.RETRY, "backoff"),  # "Back off with exponential delay"
        (500, "GET", Action.RETRY, "backoff"),
        (502, "GET", Action.RETRY, "backoff"),
        (503, "GET", Action.RETRY, "backoff"),
        (504, "GET", Action.RETRY, "backoff"),
    ],
)
def test_policy_api_status_table(status: int, method: str, action: Action, reason: str) -> None:
    """The policy API profile follows each row of seed 001's status table."""
    decision = judge(profiles.policy_api, response(status), start(method))
    assert (decision.action, decision.reason) == (action, reason)


def test_policy_api_401_is_not_re_exchanged() -> None:
    """A 401 is handed back even with a token source ("not retry-safe; rotate the key")."""
    decision = judge(profiles.policy_api, response(401), start(can_reauth=True))
    assert decision.action is Action.RETURN


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_policy_api_propose_is_retried_only_with_idempotency_key(status: int) -> None:
    """A POST with an Idempotency-Key is retried after a 5xx; one without is handed back."""
    keyed = judge(profiles.policy_api, response(status), start("POST", key=True))
    unkeyed = judge(profiles.policy_api, response(status), start("POST"))
    assert keyed.action is Action.RETRY
    assert (unkeyed.action, unkeyed.reason) == (Action.RETURN, "not-safe-to-retry")


@pytest.mark.parametrize("seed", range(10))
def test_policy_api_schedule(seed: int) -> None:
    """Backoff from 250 ms with jitter, capped at 10 s, gives up after 5 attempts."""
    policy = profiles.policy_api
    assert policy.backoff.jitter is Jitter.FULL
    decisions = run(policy, [response(503)] * 10, start(), seed)
    assert [d.action for d in decisions] == [Action.RETRY] * 4 + [Action.GIVE_UP]
    assert decisions[-1].reason == "attempts-exhausted"
    for attempt, decision in enumerate(decisions[:4], 1):
        assert 0.0 <= decision.wait <= min(10.0, 0.25 * 2 ** (attempt - 1))


# Seed 004: the Sarucci API.


@pytest.mark.parametrize(
    ("status", "method", "action", "reason"),
    [
        (200, "GET", Action.RETURN, "success"),
        (201, "POST", Action.RETURN, "success"),  # a company created
        (403, "GET", Action.RETURN, "not-retryable"),  # token type cannot use this endpoint
        (404, "GET", Action.RETURN, "not-retryable"),  # company_not_found, no_run_at_offset
        (409, "POST", Action.RETURN, "not-retryable"),  # model_id_stale
        (422, "POST", Action.RETURN, "not-retryable"),  # validation_error
        (500, "GET", Action.RETRY, "backoff"),  # internal_error: "safe to retry"
    ],
)
def test_sarucci_status_table(status: int, method: str, action: Action, reason: str) -> None:
    """The Sarucci profile follows each row of seed 004's status table."""
    decision = judge(profiles.sarucci, response(status), start(method, can_reauth=True))
    assert (decision.action, decision.reason) == (action, reason)


def test_sarucci_401_is_re_exchanged_once() -> None:
    """A 401 re-exchanges the token and re-sends once; the answer after it is handed back."""
    decisions = run(profiles.sarucci, [response(401), response(200)], start(can_reauth=True))
    assert [(d.action, d.reason) for d in decisions] == [
        (Action.REAUTH, "reauth"),
        (Action.RETURN, "success"),
    ]


def test_sarucci_second_401_is_returned() -> None:
    """A second 401 is returned, not re-exchanged."""
    decisions = run(profiles.sarucci, [response(401)] * 3, start(can_reauth=True))
    assert [(d.action, d.reason) for d in decisions] == [
        (Action.REAUTH, "reauth"),
        (Action.RETURN, "reauth-exhausted"),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_sarucci_500_schedule_is_exact(seed: int) -> None:
    """A persistent 500 waits exactly 0.5, 1, 2, 4 s, then gives up, whatever the RNG."""
    decisions = run(profiles.sarucci, [response(500)] * 10, start(), seed)
    assert [d.wait for d in decisions] == [0.5, 1.0, 2.0, 4.0, 0.0]
    assert [d.action for d in decisions] == [Action.RETRY] * 4 + [Action.GIVE_UP]
    assert decisions[-1].reason == "attempts-exhausted"
    assert decisions[-1].attempt == 5


def test_sarucci_schedule_tops_out_at_four_seconds() -> None:
    """Given more attempts, the Sarucci schedule stays at its 4 s top step."""
    policy = dataclasses.replace(profiles.sarucci, max_attempts=8)
    decisions = run(policy, [response(503)] * 10, start())
    assert [d.wait for d in decisions] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 0.0]


def test_sarucci_401_then_500s_sends_six_times() -> None:
    """A re-exchange does not eat into the 5xx schedule: 1 re-send plus 0.5, 1, 2, 4 s."""
    outcomes = [response(401)] + [response(500)] * 10
    decisions = run(profiles.sarucci, outcomes, start(can_reauth=True))
    assert [d.action for d in decisions] == [Action.REAUTH] + [Action.RETRY] * 4 + [Action.GIVE_UP]
    assert [d.wait for d in decisions[1:]] == [0.5, 1.0, 2.0, 4.0, 0.0]
    assert [d.attempt for d in decisions] == [1, 2, 3, 4, 5, 6]


def test_profiles_are_policies() -> None:
    """Each profile is a frozen `Policy`, usable as a starting point for `dataclasses.replace`."""
    for profile in (profiles.partner_api, profiles.policy_api, profiles.sarucci):
        assert isinstance(profile, Policy)
        assert dataclasses.replace(profile, max_wait=30.0).max_wait == 30.0
    assert profiles.__all__ == ["partner_api", "policy_api", "sarucci"]
