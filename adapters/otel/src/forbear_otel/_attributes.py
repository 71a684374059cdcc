"""Low-cardinality attributes for forbear's events: origin, method, decision, status or error.

Never the URL's path or query, never a header value: a metric series per path would grow
without bound, and a query may carry a key.
"""

from __future__ import annotations

import functools
from typing import Any

import forbear

__all__ = [
    "ACTION",
    "ATTEMPT",
    "ERROR_TYPE",
    "GATE",
    "GATE_WAIT",
    "METHOD",
    "REASON",
    "REQUEST_ID",
    "RESEND_COUNT",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "STATUS_CODE",
    "WAIT",
    "decision_attributes",
    "origin_attributes",
    "request_attributes",
]

SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
METHOD = "http.request.method"
STATUS_CODE = "http.response.status_code"
ERROR_TYPE = "error.type"
RESEND_COUNT = "http.request.resend_count"
ACTION = "forbear.action"
REASON = "forbear.reason"
ATTEMPT = "forbear.attempt"
WAIT = "forbear.wait"
GATE_WAIT = "forbear.gate_wait"
GATE = "forbear.gate"
REQUEST_ID = "forbear.request_id"

#: The methods HTTP semantic conventions name; any other is reported as ``_OTHER``.
KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@functools.lru_cache(maxsize=1024)
def origin_attributes(origin: str) -> tuple[tuple[str, Any], ...]:
    """``server.address`` and ``server.port`` of ``scheme://host[:port]`` (empty if not one)."""
    scheme, sep, authority = origin.partition("://")
    if not sep or not authority or "/" in authority:
        return ()
    host, port = authority, ""
    if authority.startswith("["):  # an IPv6 literal
        end = authority.find("]")
        host, port = authority[1:end], authority[end + 2 :] if end >= 0 else ""
    elif ":" in authority:
        host, _, port = authority.rpartition(":")
    pairs: list[tuple[str, Any]] = [(SERVER_ADDRESS, host)]
    if port.isascii() and port.isdigit():
        pairs.append((SERVER_PORT, int(port)))
    elif scheme in _DEFAULT_PORTS:
        pairs.append((SERVER_PORT, _DEFAULT_PORTS[scheme]))
    return tuple(pairs)


@functools.lru_cache(maxsize=1024)
def _request_pairs(origin: str, method: str) -> tuple[tuple[str, Any], ...]:
    known = method if method in KNOWN_METHODS else "_OTHER"
    return (*origin_attributes(origin), (METHOD, known))


def request_attributes(event: forbear.Event) -> dict[str, Any]:
    """Origin and method of the event's request."""
    return dict(_request_pairs(forbear.origin_of(event.url), event.method))


def decision_attributes(event: forbear.Event) -> dict[str, Any]:
    """`request_attributes` plus the action, the reason, and the status or the error kind."""
    attributes = request_attributes(event)
    attributes[ACTION] = event.action.value
    attributes[REASON] = event.reason.value
    if event.status is not None:
        attributes[STATUS_CODE] = event.status
    elif event.error is not None:
        attributes[ERROR_TYPE] = event.error.value
    return attributes
