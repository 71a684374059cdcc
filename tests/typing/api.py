"""Type-check-only: mypy reads this module to keep forbear's public annotations honest.

Nothing here is collected by pytest or meant to run: each function is a typed use of the public
`forbear` namespace, checked with `assert_type` under ``mypy --strict``. A ``# type: ignore``
marks a call that must stay a type error; strict mode's ``warn_unused_ignores`` fails the
check if it ever type-checks.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import forbear
from forbear import (
    Action,
    APIError,
    Backoff,
    Budget,
    Call,
    Decision,
    ErrorKind,
    Event,
    EventHook,
    Gate,
    HostGate,
    Jitter,
    Outcome,
    Policy,
    Reason,
    Retrier,
    RetryBudget,
    RetryState,
    SyncAdapter,
    TokenExchangeError,
    TokenSource,
    decide,
    drain_length,
    error_kind,
    origin_of,
    overrides,
    parse_error,
    parse_retry_after,
    process_budget,
    process_gate,
    profiles,
    subscribe,
)
from forbear._retry_after import header_value, parse_http_date
from forbear.errors import (
    MAX_ERROR_BODY,
    MAX_ERROR_MESSAGE,
    BadRequest,
    Conflict,
    ErrorInfo,
    Forbidden,
    Gone,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unprocessable,
)
from forbear.flow import Flow, Send, Sleep, redact_url
from forbear.rules import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_REAUTHS,
    DEFAULT_MAX_WAIT,
    DEFAULT_RETRY_AFTER_JITTER,
    DEFAULT_RETRY_STATUSES,
    IDEMPOTENCY_KEY_METHODS,
    IDEMPOTENT_METHODS,
    NEVER_SENT_ERRORS,
    REASONS,
)

if TYPE_CHECKING:
    from typing_extensions import assert_type


def constants() -> None:
    assert_type(DEFAULT_MAX_ATTEMPTS, int)
    assert_type(DEFAULT_MAX_REAUTHS, int)
    assert_type(DEFAULT_MAX_WAIT, float)
    assert_type(DEFAULT_RETRY_AFTER_JITTER, float)
    assert_type(DEFAULT_RETRY_STATUSES, frozenset[int])
    assert_type(IDEMPOTENT_METHODS, frozenset[str])
    assert_type(IDEMPOTENCY_KEY_METHODS, frozenset[str])
    assert_type(NEVER_SENT_ERRORS, frozenset[ErrorKind])
    assert_type(REASONS, dict[str, str])
    body_limit: int = MAX_ERROR_BODY
    message_limit: int = MAX_ERROR_MESSAGE
    assert_type(body_limit + message_limit, int)
    assert_type(forbear.__version__, Any)


def configuration() -> Policy:
    backoff = Backoff(initial=0.5, multiplier=2.0, max=4.0, jitter=Jitter.NONE)
    assert_type(backoff.initial, float)
    assert_type(backoff.multiplier, float)
    assert_type(backoff.max, float)
    assert_type(backoff.jitter, Jitter)
    assert_type(backoff.base(3), float)
    policy = Policy(
        max_attempts=5,
        retry_statuses=frozenset({429, 503}),
        idempotent_methods=frozenset({"GET"}),
        backoff=backoff,
        max_wait=30.0,
        deadline=120.0,
        max_reauths=1,
        retry_after_jitter=0.1,
        rate_limit_headers=True,
    )
    assert_type(policy.max_attempts, int)
    assert_type(policy.retry_statuses, frozenset[int])
    assert_type(policy.idempotent_methods, frozenset[str])
    assert_type(policy.backoff, Backoff)
    assert_type(policy.max_wait, float)
    assert_type(policy.deadline, float | None)
    assert_type(policy.max_reauths, int)
    assert_type(policy.retry_after_jitter, float)
    assert_type(policy.rate_limit_headers, bool)
    assert_type(Jitter("full"), Jitter)
    assert_type(Jitter("decorrelated").value, str)
    # Ints are floats to the type system: whole-second waits need no ``.0``.
    Policy(max_wait=60, deadline=10, backoff=Backoff(initial=1, max=8))
    # Frozen dataclasses: derived policies come from `dataclasses.replace`.
    assert_type(dataclasses.replace(policy, max_wait=60.0), Policy)
    assert_type(dataclasses.replace(profiles.sarucci, max_attempts=3), Policy)
    Policy(max_attempts="5")  # type: ignore[arg-type]
    Policy(retry_statuses={429})  # type: ignore[arg-type]
    Policy(deadline="soon")  # type: ignore[arg-type]
    return policy


def seed_profiles() -> list[Policy]:
    assert_type(profiles.partner_api, Policy)
    assert_type(profiles.policy_api, Policy)
    assert_type(profiles.sarucci, Policy)
    return [profiles.partner_api, profiles.policy_api, profiles.sarucci]


def one_logical_request(policy: Policy, headers: Mapping[str, str]) -> Decision:
    state = RetryState.start("POST", headers=headers, can_reauth=True, replayable=False, now=0.0)
    assert_type(state, RetryState)
    RetryState.start("GET", headers={})
    assert_type(state.method, str)
    assert_type(state.has_idempotency_key, bool)
    assert_type(state.can_reauth, bool)
    assert_type(state.replayable, bool)
    assert_type(state.started, float)
    assert_type(state.attempts, int)
    assert_type(state.reauths, int)
    assert_type(state.sends, int)
    assert_type(state.last_wait, float)
    assert_type(state.history, tuple[Decision, ...])

    outcome = Outcome.response(503, {"Retry-After": "2"})
    assert_type(outcome, Outcome)
    assert_type(outcome.status, int | None)
    assert_type(outcome.headers, Mapping[str, str])
    assert_type(outcome.kind, ErrorKind | None)
    assert_type(Outcome.response(200), Outcome)
    assert_type(Outcome.error(ErrorKind.CONNECT_TIMEOUT), Outcome)
    assert_type(Outcome.error("read_timeout"), Outcome)

    decision = decide(policy, state, outcome, now=1.0, wall=1.7e9, rng=random.Random(1))
    assert_type(decide(policy, state, outcome), Decision)
    assert_type(decision.action, Action)
    assert_type(decision.wait, float)
    assert_type(decision.reason, Reason)
    assert_type(decision.reason.value, str)
    assert_type(decision.attempt, int)
    assert_type(decision.status, int | None)
    assert_type(decision.kind, ErrorKind | None)
    assert_type(decision.retry_after, float | None)
    assert_type(decision.describe(), str)
    assert_type(decision._replace(action=Action.GIVE_UP), Decision)
    if decision.action is Action.RETRY or decision.action is Action.REAUTH:
        state = state.next(decision)
    assert_type(state.next(decision), RetryState)
    assert_type(state.note(), str)
    decide(policy, state, 503)  # type: ignore[arg-type]
    decide(policy, state, outcome, rng=1)  # type: ignore[arg-type]
    return decision


def header_reading(headers: Mapping[str, str], raw: Any) -> float | None:
    assert_type(header_value(headers, "Retry-After"), str | None)
    assert_type(header_value(raw, "Retry-After"), str | None)
    assert_type(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), float | None)
    assert_type(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", wall=0.0), float | None)
    assert_type(parse_retry_after(None), float | None)
    wait = parse_retry_after(header_value(headers, "Retry-After"), wall=1.7e9)
    assert_type(wait, float | None)
    parse_retry_after(5)  # type: ignore[arg-type]
    return wait


def error_envelopes(decisions: tuple[Decision, ...]) -> APIError:
    info = parse_error(404, {"X-Request-Id": "abc"}, b'{"error": {"code": "company_not_found"}}')
    assert_type(info, ErrorInfo)
    assert_type(parse_error(500, {}, None, wall=0.0), ErrorInfo)
    assert_type(parse_error(500, {}, "text"), ErrorInfo)
    assert_type(info.status, int)
    assert_type(info.error, str | None)
    assert_type(info.code, str | None)
    assert_type(info.message, str | None)
    assert_type(info.request_id, str | None)
    assert_type(info.retry_after, float | None)
    error = APIError.from_info(info, history=decisions, method="GET", url="https://a.test/x")
    assert_type(error, APIError)
    assert_type(error.status, int)
    assert_type(error.retryable, bool)
    assert_type(error.info, ErrorInfo)
    assert_type(error.history, tuple[Decision, ...])
    assert_type(error.method, str | None)
    assert_type(error.url, str | None)
    families: list[type[APIError]] = [
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        Gone,
        Unprocessable,
        RateLimited,
        ServerError,
    ]
    assert_type(families[0](info), APIError)
    try:
        raise error
    except NotFound as missing:
        assert_type(missing.info.code, str | None)
    return error


def events(decision: Decision) -> EventHook:
    event = Event.of(decision, "GET", "https://a.test/x?key=secret", None)
    assert_type(event, Event)
    assert_type(event.attempt, int)
    assert_type(event.action, Action)
    assert_type(event.wait, float)
    assert_type(event.reason, Reason)
    assert_type(event.status, int | None)
    assert_type(event.error, ErrorKind | None)
    assert_type(event.method, str)
    assert_type(event.url, str)
    assert_type(event.request_id, str | None)
    assert_type(event.message(), str)
    assert_type(redact_url("https://user:pw@a.test/x?k=v"), str)

    def hook(event: Event) -> None:
        print(event.message())

    return hook


def shared_pieces(policy: Policy, hook: EventHook) -> Retrier:
    assert_type(origin_of("https://a.test/x"), str)
    gate = HostGate(burst=2, clock=lambda: 0.0)
    assert_type(gate.delay("https://a.test"), float)
    assert_type(gate.rate("https://a.test"), float | None)
    assert_type(gate.paused_until("https://a.test"), float | None)
    budget = RetryBudget(ratio=0.2, min_per_second=10.0, ttl=10.0)
    assert_type(budget.try_withdraw(), bool)
    assert_type(budget.balance(), float)
    budget.deposit()

    def exchange() -> str:
        return "token"

    async def exchange_async() -> str:
        return "token"

    token = TokenSource(exchange, origins=["https://a.test"])
    TokenSource(exchange_async, origins="https://a.test", header="X-API-Key", scheme="")
    assert_type(token.origins, frozenset[str])
    assert_type(token.applies_to("https://a.test/x"), bool)
    assert_type(token.get_sync(), str)
    assert_type(token.refresh_sync(None), str)
    failure = TokenExchangeError("exchange failed", original=ValueError())
    assert_type(failure.original, BaseException | None)

    retrier = Retrier(
        policy=policy,
        token=token,
        gate=gate,
        budget=budget,
        idempotency_keys=True,
        request_ids=True,
        on_event=hook,
    )
    Retrier(gate=None, budget=None)
    Retrier(gate=True)  # type: ignore[arg-type]
    shared: Gate = gate  # HostGate is a Gate, RetryBudget a Budget
    spending: Budget = budget
    assert_type(process_gate(), HostGate)
    assert_type(process_budget(), RetryBudget)
    del shared, spending
    flow = retrier.flow("POST", "https://a.test/x", {}, override={"retries": False})
    assert_type(flow, Flow)
    effect = next(flow)
    if isinstance(effect, Send):
        assert_type(effect.headers, Mapping[str, str] | None)
    elif isinstance(effect, Sleep):
        assert_type(effect.seconds, float)
    elif isinstance(effect, Call):
        assert_type(effect.args, tuple[Any, ...])
    with overrides(policy=policy, retries=True):
        pass
    unsubscribe = subscribe(hook)
    unsubscribe()
    assert_type(error_kind(ValueError()), ErrorKind | None)
    assert_type(drain_length({"Content-Length": "12"}), int | None)
    return retrier


class _Adapter:
    """A sync adapter over plain values: the protocol an adapter author implements."""

    def send(self, request: str, headers: Mapping[str, str] | None) -> int:
        return 200

    def outcome(self, response: int) -> Outcome:
        return Outcome.response(response)

    def failure(self, error: Exception) -> ErrorKind | None:
        return error_kind(error)

    def replayable(self, request: str) -> bool:
        return True

    def release(self, response: int) -> None:
        del response


def running(retrier: Retrier) -> int:
    adapter: SyncAdapter[str, int] = _Adapter()
    response = retrier.run_sync(adapter, "request", "GET", "https://a.test/x", {})
    assert_type(response, int)
    return response


async def shared_pieces_async(token: TokenSource) -> None:
    assert_type(await token.get_async(), str)
    assert_type(await token.refresh_async("stale"), str)
