"""Span events and resend counts with the real client instrumentations and forbear adapters."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from otel_support import Telemetry

from forbear import Backoff, Policy
from forbear_httpx import RetryTransport
from forbear_otel import DECISION_EVENT
from forbear_testing import FaultServer, Reply

FAST = Policy(max_attempts=3, backoff=Backoff(initial=0.01, max=0.02))


def decisions(span: object) -> list[tuple[int, str, str]]:
    """(attempt, action, reason) of each forbear decision event on ``span``."""
    return [
        (
            e.attributes["forbear.attempt"],
            e.attributes["forbear.action"],
            e.attributes["forbear.reason"],
        )
        for e in span.events  # type: ignore[attr-defined]
        if e.name == DECISION_EVENT
    ]


@pytest.fixture
def httpx_instrumented(instrumented: Telemetry) -> Iterator[Telemetry]:
    """httpx's instrumentation on, globally (it wraps every HTTPTransport)."""
    HTTPXClientInstrumentor().instrument(tracer_provider=instrumented.tracer_provider)
    yield instrumented
    HTTPXClientInstrumentor().uninstrument()


def test_httpx_global_gives_a_span_per_attempt(
    httpx_instrumented: Telemetry, fault_server: FaultServer
) -> None:
    """Global httpx instrumentation under RetryTransport: one span per attempt, resends counted."""
    fault_server.script("/x", [Reply(503), Reply(503), Reply(200)])
    with httpx.Client(transport=RetryTransport(policy=FAST, gate=None, budget=None)) as client:
        assert client.get(fault_server.url + "/x").status_code == 200
    spans = httpx_instrumented.spans()
    assert len(spans) == 3
    assert [s.attributes.get("http.request.resend_count") for s in spans] == [None, 1, 2]
    # Each resend's span says why it was sent again.
    assert [decisions(s) for s in spans] == [
        [],
        [(1, "retry", "backoff")],
        [(2, "retry", "backoff")],
    ]


@pytest.mark.anyio
async def test_httpx_async_global_gives_a_span_per_attempt(
    httpx_instrumented: Telemetry, fault_server: FaultServer
) -> None:
    """The same with httpx.AsyncClient: the resend count follows the task."""
    fault_server.script("/x", [Reply(503), Reply(200)])
    transport = RetryTransport(policy=FAST, gate=None, budget=None)
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(fault_server.url + "/x")).status_code == 200
    spans = httpx_instrumented.spans()
    assert [s.attributes.get("http.request.resend_count") for s in spans] == [None, 1]


def test_httpx_logical_and_attempt_spans(
    httpx_instrumented: Telemetry, fault_server: FaultServer
) -> None:
    """instrument_client on top: a logical span with every decision, attempts as its children."""
    fault_server.script("/x", [Reply(503), Reply(503), Reply(200)])
    client = httpx.Client(transport=RetryTransport(policy=FAST, gate=None, budget=None))
    HTTPXClientInstrumentor.instrument_client(
        client, tracer_provider=httpx_instrumented.tracer_provider
    )
    with client:
        client.get(fault_server.url + "/x")
    *attempts, logical = httpx_instrumented.spans()
    assert logical.parent is None
    assert decisions(logical) == [
        (1, "retry", "backoff"),
        (2, "retry", "backoff"),
        (3, "return", "success"),
    ]
    assert logical.attributes["http.request.resend_count"] == 2
    assert [a.parent.span_id for a in attempts] == [logical.context.span_id] * 3  # type: ignore[union-attr]
    assert [a.attributes.get("http.request.resend_count") for a in attempts] == [None, 1, 2]
    assert [decisions(a) for a in attempts] == [[], [], []]  # no duplicates of the logical's


def test_httpx_outer_only_gives_one_span(
    instrumented: Telemetry, fault_server: FaultServer
) -> None:
    """Only instrument_client (RetryTransport inside its span): one span for the request."""
    fault_server.always("/x", Reply(503))
    client = httpx.Client(transport=RetryTransport(policy=FAST, gate=None, budget=None))
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=instrumented.tracer_provider)
    with client:
        client.get(fault_server.url + "/x")
    [span] = instrumented.spans()
    assert decisions(span)[-1] == (3, "give-up", "attempts-exhausted")
    assert span.attributes["http.request.resend_count"] == 2


def test_no_span_events_without_a_client_span(
    instrumented: Telemetry, fault_server: FaultServer
) -> None:
    """With no client instrumentation, forbear adds nothing to an unrelated active span."""
    fault_server.script("/x", [Reply(503), Reply(200)])
    tracer = instrumented.tracer_provider.get_tracer("app")
    with (
        tracer.start_as_current_span("crawl"),
        httpx.Client(transport=RetryTransport(policy=FAST, gate=None, budget=None)) as client,
    ):
        client.get(fault_server.url + "/x")
    [span] = instrumented.spans()
    assert span.name == "crawl"
    assert decisions(span) == []
    assert "http.request.resend_count" not in (span.attributes or {})


def test_spans_false_records_metrics_only(telemetry: Telemetry, fault_server: FaultServer) -> None:
    """spans=False: no span processor stamping, no span events."""
    from forbear_otel import ForbearInstrumentor

    ForbearInstrumentor().instrument(
        meter_provider=telemetry.meter_provider,
        tracer_provider=telemetry.tracer_provider,
        spans=False,
    )
    HTTPXClientInstrumentor().instrument(tracer_provider=telemetry.tracer_provider)
    try:
        fault_server.script("/x", [Reply(503), Reply(200)])
        with httpx.Client(transport=RetryTransport(policy=FAST, gate=None, budget=None)) as c:
            c.get(fault_server.url + "/x")
    finally:
        HTTPXClientInstrumentor().uninstrument()
        ForbearInstrumentor().uninstrument()
    assert [s.attributes.get("http.request.resend_count") for s in telemetry.spans()] == [None] * 2
    assert telemetry.total("forbear.attempts") == 2
