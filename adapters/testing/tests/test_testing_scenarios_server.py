"""Each conformance scenario's server side, proven on its own: the scenario's request sent once
with a plain httpx client (no retries) meets exactly the first answer or fault it claims."""

from __future__ import annotations

import httpx
import pytest

from forbear_testing import SCENARIOS, BodyKind, Scenario, ScenarioEnv, Target, scenario_named


def _send_once(scenario: Scenario, env: ScenarioEnv) -> httpx.Response | httpx.HTTPError:
    ctx = env.prepare(scenario)
    headers = ctx.headers
    if ctx.token is not None:
        headers["Authorization"] = f"Bearer {ctx.token}"
    try:
        with httpx.Client(timeout=ctx.timeout) as client:
            return client.request(ctx.method, ctx.url, headers=headers, content=ctx.content())
    except httpx.HTTPError as exc:
        return exc


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_first_answer_is_what_the_scenario_claims(
    scenario: Scenario, conformance_env: ScenarioEnv
) -> None:
    """The first request meets the scenario's first reply or connection fault, and arrives."""
    outcome = _send_once(scenario, conformance_env)
    first = scenario.first_answer
    if first == "connect":
        assert isinstance(outcome, httpx.ConnectError)
        return
    if first == "disconnect":
        assert isinstance(outcome, (httpx.ReadError, httpx.RemoteProtocolError))
        (arrival,) = conformance_env.raw.arrivals()
        assert arrival.raw.startswith(f"{scenario.method} {scenario.path} HTTP/1.1".encode())
        return
    if first == "read_timeout":
        assert isinstance(outcome, httpx.ReadTimeout)
        assert len(conformance_env.raw.arrivals()) == 1
        return
    assert isinstance(outcome, httpx.Response), outcome
    assert outcome.status_code == first
    reply = scenario.first_reply
    if reply is not None:
        if reply.retry_after is not None:
            assert float(outcome.headers["retry-after"]) == reply.retry_after
        if reply.retry_after_date is not None:
            assert outcome.headers["retry-after"].endswith(" GMT")
        for name, value in reply.header_pairs:
            assert outcome.headers[name] == value
        if reply.body_size is not None:
            assert len(outcome.content) == reply.body_size
        else:
            assert outcome.content == reply.body
    (served,) = conformance_env.server.arrivals(scenario.path)
    assert served.method == scenario.method
    assert served.body == (scenario.body or b"")
    for name, value in scenario.headers:
        assert served.header(name) == value


def test_a_stale_token_then_the_exchanged_one(conformance_env: ScenarioEnv) -> None:
    """In token scenarios the client's token is refused and an exchanged one accepted."""
    ctx = conformance_env.prepare(scenario_named("401-reexchange"))
    assert ctx.exchange is not None and ctx.token is not None
    with httpx.Client() as client:
        stale = client.get(ctx.url, headers={"Authorization": f"Bearer {ctx.token}"})
        fresh = client.get(ctx.url, headers={"Authorization": f"Bearer {ctx.exchange()}"})
    assert (stale.status_code, fresh.status_code) == (401, 200)
    assert conformance_env.exchanges == 1
    assert ctx.origins == (conformance_env.server.url,)


def test_always_503_keeps_answering_503(conformance_env: ScenarioEnv) -> None:
    """The give-up scenario's server answers 503 to every request, not just the first."""
    ctx = conformance_env.prepare(scenario_named("503-always-gives-up"))
    with httpx.Client() as client:
        assert {client.get(ctx.url).status_code for _ in range(6)} == {503}


def test_scripted_scenarios_answer_200_once_the_script_is_used(
    conformance_env: ScenarioEnv,
) -> None:
    """After its scripted replies, a scenario's path answers the default 200."""
    scenario = scenario_named("5xx-family-retried")
    ctx = conformance_env.prepare(scenario)
    with httpx.Client() as client:
        statuses = [client.get(ctx.url).status_code for _ in range(4)]
    assert statuses == [500, 502, 504, 200]


def test_generator_body_is_a_one_shot_generator(conformance_env: ScenarioEnv) -> None:
    """A generator scenario's body is handed out as a fresh one-shot generator each time."""
    scenario = scenario_named("generator-body-sent-once")
    assert scenario.body_kind is BodyKind.GENERATOR
    ctx = conformance_env.prepare(scenario)
    body = ctx.content()
    assert not isinstance(body, (bytes, type(None)))
    assert b"".join(body) == scenario.body
    assert list(body) == []
    assert b"".join(ctx.content()) == scenario.body  # type: ignore[arg-type]


def test_every_scenario_is_named_once_and_documented() -> None:
    """Names are unique slugs; each scenario says in one sentence what must happen."""
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))
    for scenario in SCENARIOS:
        assert scenario.summary.endswith(".")
        assert str(scenario) == scenario.name
        assert scenario.path == f"/conformance/{scenario.name}"


def test_the_table_covers_the_required_cases() -> None:
    """Every case the suite promises is in the table."""
    targets = {s.target for s in SCENARIOS}
    assert targets == set(Target)
    required = {
        "503-then-200",
        "429-retry-after-seconds",
        "429-retry-after-http-date",
        "503-always-gives-up",
        "retry-after-too-long",
        "post-503-not-retried",
        "post-503-idempotency-key-header",
        "post-429-retried",
        "post-refused-retried",
        "post-reset-after-send-not-retried",
        "get-reset-after-send-retried",
        "401-reexchange",
        "401-twice-returned",
        "401-concurrent-single-exchange",
        "generator-body-sent-once",
        "404-returned",
        "large-error-bodies-pool-of-one",
        "cancel-during-backoff",
    }
    assert required <= {s.name for s in SCENARIOS}
    assert scenario_named("401-concurrent-single-exchange").concurrency == 100
    assert scenario_named("large-error-bodies-pool-of-one").pool_size == 1
