"""Spans: forbear's decisions on the HTTP client span of the request, and resend counts.

Two shapes of client span meet forbear's events:

- A span for the whole logical request (opentelemetry-instrumentation-requests and
  -aiohttp-client always; httpx's ``instrument_client``): it is active while forbear decides,
  so each decision becomes a span event on it and ``http.request.resend_count`` says how many
  times the request was sent again.
- A span per attempt (httpx's global ``instrument()``, which wraps the inner
  ``HTTPTransport``): it has ended before forbear judges its answer, so the decision to send
  again is remembered here (`pending`) and `ResendProcessor` stamps the next attempt's span,
  as it starts, with ``http.request.resend_count`` and the decision that caused it.
"""

from __future__ import annotations

import contextvars
from typing import Any, NamedTuple

from opentelemetry import trace

import forbear

from ._attributes import (
    ACTION,
    ATTEMPT,
    ERROR_TYPE,
    GATE_WAIT,
    REASON,
    REQUEST_ID,
    RESEND_COUNT,
    STATUS_CODE,
    WAIT,
)

__all__ = ["DECISION_EVENT", "Resend", "event_attributes", "on_event", "pending", "take_pending"]

#: The name of the span event recorded for each of forbear's decisions.
DECISION_EVENT = "forbear.decision"

_CLIENT = trace.SpanKind.CLIENT
_METHOD_KEYS = ("http.request.method", "http.method")
_URL_KEYS = ("url.full", "http.url")


class Resend(NamedTuple):
    """A send about to happen again: which request, how many times before, and why."""

    method: str
    url: str
    resends: int
    event: forbear.Event


#: The resend the current task or thread is about to make (set by the event hook).
pending: contextvars.ContextVar[Resend | None] = contextvars.ContextVar(
    "forbear_otel_pending", default=None
)


def event_attributes(event: forbear.Event) -> dict[str, Any]:
    """A span event's attributes for one decision (the request id included, never the URL)."""
    attributes: dict[str, Any] = {
        ATTEMPT: event.attempt,
        ACTION: event.action.value,
        REASON: event.reason.value,
        WAIT: event.wait,
        GATE_WAIT: event.gate_wait,
    }
    if event.status is not None:
        attributes[STATUS_CODE] = event.status
    elif event.error is not None:
        attributes[ERROR_TYPE] = event.error.value
    if event.request_id:
        attributes[REQUEST_ID] = event.request_id
    return attributes


def http_client_span(span: Any, method: str, url: str | None = None) -> bool:
    """Whether ``span`` is a recording HTTP client span for ``method`` (and ``url``, if given)."""
    if getattr(span, "kind", None) is not _CLIENT or not span.is_recording():
        return False
    attributes = getattr(span, "attributes", None) or {}
    span_method = next((attributes[k] for k in _METHOD_KEYS if k in attributes), None)
    if span_method is None or str(span_method).upper() != method:
        return False
    if url is not None:
        span_url = next((attributes[k] for k in _URL_KEYS if k in attributes), None)
        if span_url is not None and forbear.flow.redact_url(str(span_url)) != url:
            return False
    return True


def on_event(event: forbear.Event, stamp_attempts: bool) -> None:
    """Record ``event`` on the request's active client span; remember a resend for the next."""
    span = trace.get_current_span()
    if http_client_span(span, event.method):
        span.add_event(DECISION_EVENT, event_attributes(event))
        if event.attempt > 1:
            span.set_attribute(RESEND_COUNT, event.attempt - 1)
    if not stamp_attempts:
        return
    action = event.action
    if action is forbear.Action.RETRY or action is forbear.Action.REAUTH:
        pending.set(Resend(event.method, event.url, event.attempt, event))
    elif pending.get() is not None:
        pending.set(None)


def take_pending(span: Any) -> Resend | None:
    """The pending resend if ``span`` is its attempt's span (consumed), else None."""
    resend = pending.get()
    if resend is None or not http_client_span(span, resend.method, resend.url):
        return None
    pending.set(None)
    return resend
