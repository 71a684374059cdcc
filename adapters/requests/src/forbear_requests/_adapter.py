"""`RetryAdapter`: a requests transport adapter on forbear's one retry loop.

The loop is the core's (`forbear.Retrier.run_sync`); this module only says how requests sends
a prepared request with extra headers (through the wrapped adapter, ``inner``), how its
responses and errors read as outcomes, whether a body can be sent again, and how a discarded
response is released. The final response goes back as ``inner.send`` returned it, unread.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import EllipsisType
from typing import Any

from requests.adapters import BaseAdapter, HTTPAdapter
from requests.models import PreparedRequest, Response
from urllib3.util.retry import Retry

from forbear import (
    EventHook,
    HostGate,
    Outcome,
    Policy,
    Retrier,
    RetryBudget,
    TokenSource,
    drain_length,
    process_budget,
    process_gate,
)

from ._errors import error_kind

__all__ = ["RetryAdapter"]


class RetryAdapter(BaseAdapter):
    """A requests adapter that retries the way the server asks, sending through ``inner``.

    ``inner`` (default ``HTTPAdapter(max_retries=Retry(0, read=False))``) does each send and
    owns the connection pool; one whose urllib3 retries are on is refused, as they would
    multiply forbear's attempts. ``close`` is delegated to it. ``gate`` and ``budget`` default
    to the process's; pass objects to narrow the scope, or None to go without.
    """

    def __init__(
        self,
        inner: BaseAdapter | None = None,
        *,
        policy: Policy | None = None,
        token: TokenSource | None = None,
        gate: HostGate | EllipsisType | None = ...,
        budget: RetryBudget | EllipsisType | None = ...,
        idempotency_keys: bool = False,
        request_ids: bool = False,
        on_event: EventHook | None = None,
    ) -> None:
        super().__init__()
        #: The retry loop and what it shares: policy, gate, budget, token source, events.
        self.retrier = Retrier(
            policy=policy,
            token=token,
            gate=gate,
            budget=budget,
            idempotency_keys=idempotency_keys,
            request_ids=request_ids,
            on_event=on_event,
        )
        #: The adapter that sends each attempt.
        self.inner = _checked(inner)

    def __repr__(self) -> str:
        return f"RetryAdapter({type(self.inner).__name__}, policy={self.retrier.policy!r})"

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        """Send ``request`` through ``inner``, retrying as the core decides; ``timeout`` bounds
        each attempt. The final response is returned unread, as ``inner.send`` returned it."""
        attempts = _Attempts(self.inner, (stream, timeout, verify, cert, proxies))
        url = request.url or ""
        return self.retrier.run_sync(
            attempts, request, request.method or "GET", url, request.headers
        )

    def close(self) -> None:
        """Close ``inner`` (its connection pool)."""
        self.inner.close()

    # -- pickling (requests pickles a session's adapters) ----------------------------------

    def __getstate__(self) -> dict[str, Any]:
        settings = self.retrier.settings()
        if settings["token"] is not None:
            raise TypeError(
                "a RetryAdapter with a token= cannot be pickled: its TokenSource holds a live "
                "credential and locks; mount a new RetryAdapter(token=...) after unpickling"
            )
        # Gates and budgets hold locks: pickled as their scope, rebuilt in the new process.
        settings["gate"] = _scope(settings["gate"], process_gate())
        settings["budget"] = _scope(settings["budget"], process_budget())
        return {"inner": self.inner, "settings": settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        settings = state["settings"]
        for name, own in (("gate", HostGate), ("budget", RetryBudget)):
            if settings[name] == "own":
                settings[name] = own()
        self.retrier = Retrier(**settings)
        self.inner = state["inner"]


def _checked(inner: BaseAdapter | None) -> BaseAdapter:
    if inner is None:
        return HTTPAdapter(max_retries=Retry(0, read=False))
    if not isinstance(inner, BaseAdapter):
        raise TypeError(f"inner must be a requests BaseAdapter, got {type(inner).__name__}")
    retries = getattr(inner, "max_retries", None)
    if isinstance(retries, Retry) and retries.total != 0:
        raise ValueError(
            f"inner {type(inner).__name__} retries on its own (max_retries={retries!r}), which "
            "would multiply forbear's attempts: build it with max_retries=0 (the default)"
        )
    return inner


def _scope(shared: Any, process: Any) -> Any:
    """How a gate or budget is pickled: ``...`` (the process's), None, or "own" (a fresh one)."""
    return None if shared is None else ... if shared is process else "own"


class _Attempts:
    """requests' part of the loop for one logical request: its send options and file offset."""

    __slots__ = ("inner", "options", "start")

    def __init__(self, inner: BaseAdapter, options: tuple[Any, ...]) -> None:
        self.inner = inner
        self.options = options
        self.start: int | EllipsisType | None = ...  # a file body's offset; ...: not sent yet

    def send(self, request: PreparedRequest, headers: Mapping[str, str] | None) -> Response:
        body = request.body
        if self.start is ...:
            self.start = _offset(body)
        elif self.start is not None:
            body.seek(self.start)  # type: ignore[union-attr]
        if headers:
            # On a copy: requests builds a redirect from the caller's request, not this one.
            request = request.copy()
            request.headers.update(headers)
        return self.inner.send(request, *self.options)

    @staticmethod
    def outcome(response: Response) -> Outcome:
        return Outcome(response.status_code, response.headers)

    failure = staticmethod(error_kind)

    def replayable(self, request: PreparedRequest) -> bool:
        body = request.body
        return (
            isinstance(body, (bytes, bytearray, str, list, tuple))
            or body is None
            or self.start is not None
        )

    @staticmethod
    def release(response: Response) -> None:
        try:
            if drain_length(response.headers) is not None:
                response.raw.read(decode_content=False)  # its connection goes back to the pool
        except Exception:
            pass  # the connection is dropped instead of reused; the close below still runs
        finally:
            response.close()


def _offset(body: Any) -> int | None:
    """Where a seekable file body starts, or None (not a file, or one that cannot seek)."""
    try:
        if body is None or not (hasattr(body, "seek") and hasattr(body, "read")):
            return None
        if not getattr(body, "seekable", lambda: True)():
            return None
        position = body.tell()
    except (OSError, ValueError, AttributeError):  # a pipe, a socket file, a closed file
        return None
    return position if isinstance(position, int) else None
