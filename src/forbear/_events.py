"""`Event`: one record per decision, for the ``forbear`` logger and the ``on_event`` hook.

An event carries what an operator needs to see why a request was retried and nothing a
credential could hide in: the URL loses its userinfo and query, and no header value other
than the server's request id is ever copied.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from ._state import Action, Decision, ErrorKind, Reason

__all__ = [
    "Event",
    "EventHook",
    "Sending",
    "logger",
    "redact_url",
    "sending",
    "subscribe",
    "subscribers",
]

#: The library's logger: retries at INFO, every other decision at DEBUG.
logger = logging.getLogger("forbear")


def redact_url(url: str) -> str:
    """``url`` without userinfo, query or fragment: the parts that carry secrets."""
    text = str(url).split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


@dataclass(frozen=True, slots=True)
class Event:
    """What forbear decided for one attempt of one logical request."""

    #: The number of the send judged (1-based).
    attempt: int
    #: What happens next.
    action: Action
    #: Seconds waited before the next send.
    wait: float
    #: The decision's stable slug (see `forbear.REASONS`).
    reason: Reason
    #: The response status, or None for a transport error.
    status: int | None
    #: The transport error's kind, or None for a response.
    error: ErrorKind | None
    #: The request method.
    method: str
    #: The URL without userinfo, query or fragment.
    url: str
    #: The server's request id (``X-Request-Id``), or the one forbear sent, if any.
    request_id: str | None
    #: Seconds the gate held this attempt before it was sent (0.0 when it went at once).
    gate_wait: float = 0.0

    @classmethod
    def of(
        cls,
        decision: Decision,
        method: str,
        url: str,
        request_id: str | None,
        gate_wait: float = 0.0,
    ) -> Event:
        """The event for ``decision``."""
        return cls(
            decision.attempt,
            decision.action,
            decision.wait,
            decision.reason,
            decision.status,
            decision.kind,
            method,
            redact_url(url),
            request_id,
            gate_wait,
        )

    def message(self) -> str:
        """A one-line log message."""
        what = self.status if self.status is not None else (self.error and self.error.value)
        text = (
            f"{self.method} {self.url} #{self.attempt} {what}: {self.action.value} ({self.reason})"
        )
        if self.action is Action.RETRY:
            text += f", waiting {self.wait:.3f}s"
        if self.request_id:
            text += f" [request_id {self.request_id}]"
        return text


EventHook = Callable[[Event], None]


class _Subscribers:
    """The process's event subscribers: a tuple, replaced whole, so readers need no lock.

    One instance (`_Hub`), not a class read for its attributes: every request reads ``hooks``,
    and the interpreter reads an instance's slot faster than a class attribute."""

    __slots__ = ("hooks", "lock")

    def __init__(self) -> None:
        self.hooks: tuple[EventHook, ...] = ()
        self.lock = threading.Lock()


_Hub = _Subscribers()


def subscribe(hook: EventHook) -> Callable[[], None]:
    """Call ``hook`` with every `Event` of every adapter in this process; returns unsubscribe.

    For instrumentation (metrics, traces) that must see all clients without touching each.
    Costs nothing while no one subscribes. A hook must be quick and must not raise: it runs
    inside the request, on the thread or task that made it.
    """
    with _Hub.lock:
        _Hub.hooks = (*_Hub.hooks, hook)

    def unsubscribe() -> None:
        with _Hub.lock:
            hooks = list(_Hub.hooks)
            if hook in hooks:
                hooks.remove(hook)
            _Hub.hooks = tuple(hooks)

    return unsubscribe


def subscribers() -> tuple[EventHook, ...]:
    """The hooks `subscribe` registered, in order."""
    return _Hub.hooks


class Sending(NamedTuple):
    """The re-send under way in this thread or task (see `sending`)."""

    #: The number of the send (2 for the first re-send).
    attempt: int
    #: The request method.
    method: str
    #: The URL without userinfo, query or fragment.
    url: str


_SENDING: contextvars.ContextVar[Sending | None] = contextvars.ContextVar(
    "forbear_sending", default=None
)


def sending() -> Sending | None:
    r"""The re-send this thread or task is making right now, while anyone `subscribe`\ s.

    For instrumentation that labels each attempt (OpenTelemetry's
    ``http.request.resend_count``): set only around re-sends, and only while a subscriber
    exists, so it costs nothing otherwise. None during a first send.
    """
    return _SENDING.get()
