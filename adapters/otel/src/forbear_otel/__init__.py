"""forbear_otel: OpenTelemetry metrics and span events for every forbear adapter in the process.

``ForbearInstrumentor().instrument(meter_provider=..., tracer_provider=...)`` subscribes to
forbear's events (`forbear.subscribe`); ``uninstrument()`` removes the subscription, after which
forbear builds no events at all. See the README for the metrics, the span events, and the order
in which to mount forbear and the HTTP client instrumentations.
"""

from __future__ import annotations

from ._instrumentor import (
    ATTEMPTS,
    BUDGET_REFUSALS,
    GATE_DELAY,
    GATE_RATE,
    GIVE_UPS,
    REAUTHS,
    RETRIES,
    RETRY_WAIT,
    WAIT_BUCKETS,
    ForbearInstrumentor,
)
from ._traces import DECISION_EVENT

__all__ = [
    "ATTEMPTS",
    "BUDGET_REFUSALS",
    "DECISION_EVENT",
    "GATE_DELAY",
    "GATE_RATE",
    "GIVE_UPS",
    "REAUTHS",
    "RETRIES",
    "RETRY_WAIT",
    "WAIT_BUCKETS",
    "ForbearInstrumentor",
]
