"""Fixtures for the forbear-otel tests: real SDK providers with in-memory reader and exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_support import Telemetry

from forbear_otel import ForbearInstrumentor


@pytest.fixture(params=["asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The anyio backend an async test runs on (aiohttp needs asyncio)."""
    return str(request.param)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """Fresh SDK meter and tracer providers with in-memory reader and exporter."""
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(meter_provider, reader, tracer_provider, exporter)
    meter_provider.shutdown()
    tracer_provider.shutdown()


@pytest.fixture
def instrumented(telemetry: Telemetry) -> Iterator[Telemetry]:
    """forbear instrumented with the test's providers, uninstrumented afterwards."""
    ForbearInstrumentor().instrument(
        meter_provider=telemetry.meter_provider, tracer_provider=telemetry.tracer_provider
    )
    yield telemetry
    ForbearInstrumentor().uninstrument()
