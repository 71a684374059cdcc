"""`RetryAdapter`: a requests transport adapter that runs forbear's retry loop.

The loop itself is `forbear.RetryCall`'s (see its module docstring); this module only maps
requests' types onto it: it sends through `requests.adapters.HTTPAdapter.send`, rewinds file
bodies, releases discarded responses, sleeps with `time.sleep`, and re-raises. No retry rule
lives here: which status, error, method or body may be retried, and how long to wait, is the
core's to say. urllib3's own retries stay off (``Retry(0, read=False)``), so the two never stack.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import requests
from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, HTTPAdapter
from requests.models import PreparedRequest, Response
from urllib3.util.retry import Retry

from forbear import (
    Action,
    Decision,
    EventHook,
    HostGate,
    Policy,
    Retrier,
    RetryBudget,
    RetryCall,
    TokenSource,
)

from ._errors import error_kind

__all__ = ["DRAIN_LIMIT", "RetryAdapter"]

#: A discarded response whose ``Content-Length`` is at most this many bytes is read before it
#: is closed, so its connection goes back to the pool for reuse; a larger or unsized one is
#: closed unread (its connection is dropped, its pool slot still returned).
DRAIN_LIMIT = 64 * 1024

_FINAL = (Action.RETURN, Action.GIVE_UP)

Timeout = float | tuple[float, float] | tuple[float, None] | None
Cert = bytes | str | tuple[bytes | str, bytes | str] | None


class _Config(NamedTuple):
    """What an adapter pickles in place of its `Retrier` (which holds locks)."""

    policy: Policy
    gate: bool
    budget: bool
    idempotency_keys: bool
    request_ids: bool
    on_event: EventHook | None

    def retrier(self) -> Retrier:
        return Retrier(
            policy=self.policy,
            gate=self.gate,
            budget=self.budget,
            idempotency_keys=self.idempotency_keys,
            request_ids=self.request_ids,
            on_event=self.on_event,
        )


class RetryAdapter(HTTPAdapter):
    """A `requests.adapters.HTTPAdapter` that retries the way the server asks.

    Mount it with ``session.mount("https://", RetryAdapter())``. ``gate`` and ``budget``
    default to a fresh `HostGate` / `RetryBudget` for this adapter; pass the same objects to
    several adapters to share them, or ``None`` to go without. ``pool_connections``,
    ``pool_maxsize`` and ``pool_block`` are `HTTPAdapter`'s; its ``max_retries`` is fixed at
    ``Retry(0, read=False)`` so urllib3 never retries underneath forbear.

    One adapter may serve any number of threads: it keeps no per-request state. ``retrier``
    is the `forbear.Retrier` it runs its loop around (policy, gate, budget, token source).
    """

    #: What `HTTPAdapter.__getstate__` pickles: its own settings and forbear's `_Config`.
    __attrs__ = [*HTTPAdapter.__attrs__, "_forbear"]  # noqa: RUF012 - as HTTPAdapter declares it

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        token: TokenSource | None = None,
        gate: HostGate | bool | None = True,
        budget: RetryBudget | bool | None = True,
        idempotency_keys: bool = False,
        request_ids: bool = False,
        on_event: EventHook | None = None,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        pool_block: bool = DEFAULT_POOLBLOCK,
    ) -> None:
        self.retrier = Retrier(
            policy=policy,
            token=token,
            gate=gate,
            budget=budget,
            idempotency_keys=idempotency_keys,
            request_ids=request_ids,
            on_event=on_event,
        )
        self._forbear = _Config(
            self.retrier.policy,
            self.retrier.gate is not None,
            self.retrier.budget is not None,
            idempotency_keys,
            request_ids,
            on_event,
        )
        super().__init__(
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=Retry(0, read=False),
            pool_block=pool_block,
        )

    def __repr__(self) -> str:
        return f"RetryAdapter(policy={self.retrier.policy!r})"

    # -- pickling (requests pickles sessions and their adapters) ---------------------------

    def __getstate__(self) -> dict[str, Any]:
        if self.retrier.token is not None:
            raise TypeError(
                "a RetryAdapter with a token= cannot be pickled: its TokenSource holds a live "
                "credential and locks; mount a new RetryAdapter(token=...) after unpickling"
            )
        state: dict[str, Any] = super().__getstate__()  # type: ignore[misc]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The gate and budget are this process's: an unpickled adapter starts fresh ones.
        super().__setstate__(state)  # type: ignore[misc]
        self.retrier = self._forbear.retrier()

    # -- the loop --------------------------------------------------------------------------

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Timeout = None,
        verify: bool | str = True,
        cert: Cert = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        """Send ``request``, retrying as the core decides.

        The final response is returned as `HTTPAdapter.send` returns it; with ``stream=False``
        its body is read here, so a body cut short is judged (and maybe retried) like any other
        transport failure. The last exception is re-raised unchanged, with the attempt history
        added as a note.
        """
        body = request.body
        replayable, start = _replay_start(body)
        call = self.retrier.begin(
            request.method or "GET", request.url or "", request.headers, replayable=replayable
        )
        added = call.headers()
        if added or call.uses_token:
            # Our headers go on a copy: the caller's request, sent again, is a new request.
            request = request.copy()
            request.headers.update(added)
        sends = 0
        while True:
            delay = call.gate_delay()
            if delay > 0.0:
                time.sleep(delay)
            if call.uses_token:
                auth = call.auth_sync()
                if auth is not None:
                    request.headers[auth[0]] = auth[1]
            if sends and start is not None:
                body.seek(start)  # type: ignore[union-attr]
            sends += 1
            try:
                response = super().send(request, stream, timeout, verify, cert, proxies)
            except requests.RequestException as exc:
                if not _retry_after_error(call, exc):
                    raise
                continue
            try:
                decision = call.on_response(response.status_code, response.headers)
            except BaseException:
                response.close()
                raise
            if decision.action in _FINAL:
                if stream or _read_body(call, response):
                    return response
                continue
            _release(response)
            _act(call, decision)


# -- helpers ---------------------------------------------------------------------------------

_ONE_SHOT = (False, None)


def _replay_start(body: Any) -> tuple[bool, int | None]:
    """Whether a body can be sent again, and the file offset to rewind it to (None: no file)."""
    if body is None or isinstance(body, (bytes, str, bytearray, list, tuple)):
        return True, None
    if not hasattr(body, "read"):
        return _ONE_SHOT  # a generator or any other iterator: consumed by the first send
    if not (hasattr(body, "seek") and hasattr(body, "tell")):
        return _ONE_SHOT
    seekable = getattr(body, "seekable", None)
    try:
        if seekable is not None and not seekable():
            return _ONE_SHOT
        position = body.tell()
    except (OSError, ValueError):  # a pipe, a socket file, a closed file
        return _ONE_SHOT
    return (True, position) if isinstance(position, int) else _ONE_SHOT


def _retry_after_error(call: RetryCall, exc: requests.RequestException) -> bool:
    """Judge a failed send; True after sleeping when it is to be retried, else annotate it."""
    kind = error_kind(exc)
    decision = None if kind is None else call.on_error(kind)
    if decision is None or decision.action in _FINAL:
        call.annotate(exc)
        return False
    _act(call, decision)
    return True


def _read_body(call: RetryCall, response: Response) -> bool:
    """Read the final response's body; False (after sleeping) when it failed and is retried."""
    try:
        response.content  # noqa: B018 - read here, so a body cut short is judged like any failure
    except requests.RequestException as exc:
        response.close()
        if not _retry_after_error(call, exc):
            raise
        return False
    except BaseException:
        response.close()
        raise
    return True


def _act(call: RetryCall, decision: Decision) -> None:
    """Do what a RETRY or REAUTH decision asks before the next send."""
    if decision.action is Action.REAUTH:
        call.reauth_sync()
    elif decision.wait > 0.0:
        time.sleep(decision.wait)


def _release(response: Response) -> None:
    """Close a discarded response; a small one is read first so its connection is reused."""
    try:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) <= DRAIN_LIMIT:
            response.raw.read(DRAIN_LIMIT, decode_content=False)
    except Exception:
        pass  # the connection is dropped instead of reused; the close below still runs
    finally:
        response.close()
