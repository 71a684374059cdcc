"""requests and aiohttp: their instrumentations make one span per logical request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from otel_support import Telemetry

from forbear import Backoff, Policy
from forbear_otel import DECISION_EVENT
from forbear_testing import FaultServer, Reply

FAST = Policy(max_attempts=3, backoff=Backoff(initial=0.01, max=0.02))


def decisions(span: object) -> list[tuple[int, str]]:
    """(attempt, action) of each forbear decision event on ``span``."""
    return [
        (e.attributes["forbear.attempt"], e.attributes["forbear.action"])
        for e in span.events  # type: ignore[attr-defined]
        if e.name == DECISION_EVENT
    ]


@pytest.fixture
def requests_instrumented(instrumented: Telemetry) -> Iterator[Telemetry]:
    """requests' instrumentation on (it wraps Session.send)."""
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    RequestsInstrumentor().instrument(tracer_provider=instrumented.tracer_provider)
    yield instrumented
    RequestsInstrumentor().uninstrument()


@pytest.fixture
def aiohttp_instrumented(instrumented: Telemetry) -> Iterator[Telemetry]:
    """aiohttp's instrumentation on (a trace config on every ClientSession)."""
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    AioHttpClientInstrumentor().instrument(tracer_provider=instrumented.tracer_provider)
    yield instrumented
    AioHttpClientInstrumentor().uninstrument()


def test_requests_one_span_carries_every_decision(
    requests_instrumented: Telemetry, fault_server: FaultServer
) -> None:
    """Session.send is the span: RetryAdapter's attempts are inside it, each decision an event."""
    import requests

    from forbear_requests import RetryAdapter

    fault_server.script("/x", [Reply(503), Reply(503), Reply(200)])
    with requests.Session() as session:
        session.mount("http://", RetryAdapter(policy=FAST, gate=None, budget=None))
        assert session.get(fault_server.url + "/x").status_code == 200
    [span] = requests_instrumented.spans()
    assert decisions(span) == [(1, "retry"), (2, "retry"), (3, "return")]
    assert span.attributes["http.request.resend_count"] == 2


@pytest.mark.anyio
async def test_aiohttp_one_span_carries_every_decision(
    aiohttp_instrumented: Telemetry, fault_server: FaultServer
) -> None:
    """The trace config fires once around the middlewares: one span, each decision an event."""
    import aiohttp

    from forbear_aiohttp import RetryMiddleware

    fault_server.script("/x", [Reply(503), Reply(503), Reply(200)])
    middleware = RetryMiddleware(policy=FAST, gate=None, budget=None)
    async with (
        aiohttp.ClientSession(middlewares=[middleware]) as session,
        session.get(fault_server.url + "/x") as response,
    ):
        assert response.status == 200
        await response.read()
    [span] = aiohttp_instrumented.spans()
    assert decisions(span) == [(1, "retry"), (2, "retry"), (3, "return")]
    assert span.attributes["http.request.resend_count"] == 2
