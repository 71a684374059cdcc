"""`ResendProcessor`: stamps per-attempt client spans as they start (OpenTelemetry SDK only).

Imported only when the tracer provider is the SDK's (it has ``add_span_processor``), so the
distribution itself needs nothing but the API.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import Span, SpanProcessor

from ._attributes import RESEND_COUNT
from ._traces import DECISION_EVENT, event_attributes, http_client_span, take_pending

__all__ = ["ResendProcessor"]


class ResendProcessor(SpanProcessor):
    """On the span of an attempt that forbear sends again: ``http.request.resend_count``.

    When the span's parent is not already the logical request's client span (which carries
    every decision), the decision that caused the resend is added as a span event too.
    An SDK tracer provider cannot drop a processor, so `enabled` switches it off instead.
    """

    def __init__(self) -> None:
        self.enabled = True

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        """Stamp ``span`` if it is the attempt forbear is about to send again."""
        if not self.enabled:
            return
        resend = take_pending(span)
        if resend is None:
            return
        span.set_attribute(RESEND_COUNT, resend.resends)
        parent = trace.get_current_span(parent_context)
        if not http_client_span(parent, resend.method):
            span.add_event(DECISION_EVENT, event_attributes(resend.event))
