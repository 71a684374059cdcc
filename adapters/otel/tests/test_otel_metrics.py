"""Metrics from forbear's events, with the real SDK, the fault server and forbear-httpx."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import httpx
import pytest
from otel_support import Telemetry

import forbear
from forbear import Backoff, HostGate, Policy, RetryBudget, TokenSource
from forbear_httpx import RetryTransport
from forbear_otel import (
    ATTEMPTS,
    BUDGET_REFUSALS,
    GATE_DELAY,
    GATE_RATE,
    GIVE_UPS,
    REAUTHS,
    RETRIES,
    RETRY_WAIT,
    ForbearInstrumentor,
)
from forbear_testing import FaultServer, Reply

FAST = Policy(max_attempts=3, backoff=Backoff(initial=0.01, max=0.02))


def subscribers() -> tuple[object, ...]:
    """The hooks subscribed to forbear's events (the core's own list)."""
    listing = getattr(forbear, "subscribers", None)
    if listing is None:  # not yet re-exported by the core
        listing = importlib.import_module("forbear._events").subscribers
    return tuple(listing())


def get(url: str, **options: object) -> httpx.Response:
    """One GET through a RetryTransport with the fast policy (plus ``options``)."""
    options.setdefault("policy", FAST)
    options.setdefault("gate", None)
    options.setdefault("budget", None)
    with httpx.Client(transport=RetryTransport(**options)) as client:  # type: ignore[arg-type]
        return client.get(url)


@pytest.fixture
def no_one_subscribed() -> Iterator[None]:
    """The test starts and ends with no subscriber."""
    assert subscribers() == ()
    yield
    assert subscribers() == ()


def test_attempts_retries_and_waits(instrumented: Telemetry, fault_server: FaultServer) -> None:
    """Two 503s then a 200: three attempts, two retries by reason, two waits, three gate delays."""
    fault_server.script("/items/42", [Reply(503), Reply(503, retry_after=0), Reply(200)])
    assert get(fault_server.url + "/items/42?api_key=s3cret").status_code == 200
    port = int(fault_server.url.rsplit(":", 1)[1])
    origin = {"server.address": "127.0.0.1", "server.port": port, "http.request.method": "GET"}
    assert instrumented.total(ATTEMPTS, **origin) == 3
    assert instrumented.total(ATTEMPTS, **{"forbear.action": "retry"}) == 2
    assert instrumented.total(ATTEMPTS, **{"forbear.reason": "success"}) == 1
    assert instrumented.total(RETRIES, **{"http.response.status_code": 503}) == 2
    assert instrumented.total(RETRIES, **{"forbear.reason": "backoff"}) == 1
    assert instrumented.total(RETRIES, **{"forbear.reason": "retry-after"}) == 1
    assert sum(p.count for p in instrumented.points(RETRY_WAIT)) == 2
    assert sum(p.count for p in instrumented.points(GATE_DELAY)) == 3
    assert instrumented.total(GIVE_UPS) == 0


def test_attributes_never_carry_path_query_or_token(
    instrumented: Telemetry, fault_server: FaultServer
) -> None:
    """No metric attribute names the path, the query or a credential."""
    fault_server.script("/users/alice/secret", [Reply(503), Reply(200)])
    get(fault_server.url + "/users/alice/secret?token=t0ps3cret")
    values = [
        str(value)
        for name in (ATTEMPTS, RETRIES, RETRY_WAIT, GATE_DELAY)
        for point in instrumented.points(name)
        for value in point.attributes.values()
    ]
    assert values
    assert not [v for v in values if "alice" in v or "t0ps3cret" in v or "/" in v]


def test_give_up_by_reason(instrumented: Telemetry, fault_server: FaultServer) -> None:
    """Three 503s exhaust the attempts: one give-up with reason attempts-exhausted."""
    fault_server.always("/down", Reply(503))
    assert get(fault_server.url + "/down").status_code == 503
    assert instrumented.total(GIVE_UPS, **{"forbear.reason": "attempts-exhausted"}) == 1
    assert instrumented.total(RETRIES) == 2
    assert instrumented.total(BUDGET_REFUSALS) == 0


def test_transport_error_counts_its_error_type(instrumented: Telemetry, refused_port: int) -> None:
    """A refused connection is counted with ``error.type`` and no status code."""
    with pytest.raises(httpx.ConnectError):
        get(f"http://127.0.0.1:{refused_port}/x")
    assert instrumented.total(ATTEMPTS, **{"error.type": "connect"}) == 3
    assert not [
        p for p in instrumented.points(ATTEMPTS) if "http.response.status_code" in p.attributes
    ]


def test_budget_refusals(instrumented: Telemetry, fault_server: FaultServer) -> None:
    """An empty retry budget refuses the retry: a give-up and a budget refusal."""
    fault_server.always("/outage", Reply(503))
    budget = RetryBudget(ratio=0.0, min_per_second=0.0)
    assert get(fault_server.url + "/outage", budget=budget).status_code == 503
    assert instrumented.total(BUDGET_REFUSALS, **{"forbear.reason": "budget-exhausted"}) == 1
    assert instrumented.total(GIVE_UPS, **{"forbear.reason": "budget-exhausted"}) == 1
    assert instrumented.total(ATTEMPTS) == 1


def test_token_reexchange(instrumented: Telemetry, fault_server: FaultServer) -> None:
    """A 401 with a token source: one re-exchange counted, then the 200."""
    fault_server.require_token("/me")
    token = TokenSource(fault_server.issue_token, origins=[fault_server.url], token="stale")
    assert get(fault_server.url + "/me", token=token).status_code == 200
    assert instrumented.total(REAUTHS, **{"http.request.method": "GET"}) == 1
    assert instrumented.total(ATTEMPTS, **{"forbear.reason": "reauth"}) == 1


def test_gate_rate_per_origin(instrumented: Telemetry, fault_server: FaultServer) -> None:
    """After a 429 the gate paces the origin: the gauge reports its rate for that origin."""
    ForbearInstrumentor().uninstrument()
    gate = HostGate()
    ForbearInstrumentor().instrument(
        meter_provider=instrumented.meter_provider,
        tracer_provider=instrumented.tracer_provider,
        gates={"crawler": gate},
    )
    fault_server.script("/limited", [Reply(429, retry_after=0), Reply(200)])
    assert get(fault_server.url + "/limited", gate=gate).status_code == 200
    port = int(fault_server.url.rsplit(":", 1)[1])
    [point] = [
        p for p in instrumented.points(GATE_RATE) if p.attributes["forbear.gate"] == "crawler"
    ]
    assert dict(point.attributes) == {
        "server.address": "127.0.0.1",
        "server.port": port,
        "forbear.gate": "crawler",
    }
    assert point.value == gate.rates()[fault_server.url]
    assert point.value > 0


def test_gate_keyed_by_secret_is_not_reported(
    instrumented: Telemetry, fault_server: FaultServer
) -> None:
    """A gate keyed by something other than an origin (an API key, say) reports nothing."""
    ForbearInstrumentor().uninstrument()
    gate = HostGate(key=lambda url: "key-s3cret")
    ForbearInstrumentor().instrument(meter_provider=instrumented.meter_provider, gates=[gate])
    fault_server.script("/limited", [Reply(429, retry_after=0), Reply(200)])
    get(fault_server.url + "/limited", gate=gate)
    assert gate.rates()
    assert [
        p for p in instrumented.points(GATE_RATE) if p.attributes["forbear.gate"] == "gate-1"
    ] == []


@pytest.mark.usefixtures("no_one_subscribed")
def test_uninstrument_leaves_no_subscriber(telemetry: Telemetry, fault_server: FaultServer) -> None:
    """instrument subscribes once; uninstrument removes it, and nothing more is recorded."""
    instrumentor = ForbearInstrumentor()
    instrumentor.instrument(meter_provider=telemetry.meter_provider)
    assert len(subscribers()) == 1
    fault_server.script("/a", [Reply(503), Reply(200)])
    get(fault_server.url + "/a")
    assert telemetry.total(ATTEMPTS) == 2
    instrumentor.uninstrument()
    assert subscribers() == ()
    fault_server.script("/a", [Reply(503), Reply(200)])
    get(fault_server.url + "/a")
    assert telemetry.total(ATTEMPTS) == 2
    assert not instrumentor.is_instrumented_by_opentelemetry


@pytest.mark.usefixtures("no_one_subscribed")
def test_instrument_twice_subscribes_once(telemetry: Telemetry) -> None:
    """A second instrument() is refused, as the contrib instrumentors do."""
    instrumentor = ForbearInstrumentor()
    instrumentor.instrument(meter_provider=telemetry.meter_provider)
    instrumentor.instrument(meter_provider=telemetry.meter_provider)
    assert len(subscribers()) == 1
    instrumentor.uninstrument()
