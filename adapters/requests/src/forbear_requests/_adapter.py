"""`RetryAdapter`: a requests transport adapter on the core's one loop (`forbear.Retrier`).

What requests mounts: the constructor's shape, the wrapped adapter (``inner``) that sends each
attempt, ``close`` and pickling. How one request's attempts are sent and read is `Sends`'s
(``_attempts.py``); every retry rule is the core's.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import EllipsisType
from typing import Any

from requests.adapters import BaseAdapter, HTTPAdapter
from requests.models import PreparedRequest, Response
from urllib3.util.retry import Retry

from forbear import (
    Budget,
    EventHook,
    Gate,
    HostGate,
    Policy,
    Retrier,
    RetryBudget,
    TokenSource,
    origin_of,
    process_budget,
    process_gate,
)

from ._attempts import _IN_MEMORY, SENDS, Attempts

__all__ = ["RetryAdapter"]


class RetryAdapter(BaseAdapter):
    """A requests adapter that retries the way the server asks, sending through ``inner``.

    ``inner`` (default ``HTTPAdapter(max_retries=Retry(0, read=False))``) sends each attempt and
    owns the pool; one with urllib3 retries on is refused (they would multiply forbear's). ``gate``
    and ``budget`` default to the process's; pass objects to narrow the scope, None to go without.
    """

    def __init__(
        self,
        inner: BaseAdapter | None = None,
        *,
        policy: Policy | None = None,
        token: TokenSource | None = None,
        gate: Gate | EllipsisType | None = ...,
        budget: Budget | EllipsisType | None = ...,
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
        url = request.url or ""
        # The origin, from the cache `_origin` keeps, inline: this runs on every request. The
        # key is the URL's first three "/"-separated parts, ``("http:", "", "host:port")``:
        # `str.split` is one of the string operations requests itself runs on every request,
        # so its code is hot where `str.find` with a start (argument parsing of the old kind)
        # measured half a microsecond in a request's cold caches. Only a real
        # ``scheme://authority`` is ever a key (`_origin`); any other URL misses.
        parts = url.split("/", 3)
        origin = _ORIGINS.get((parts[0], parts[1], parts[2])) if len(parts) > 2 else None
        body = request.body
        return self.retrier.run_sync(
            SENDS if body is None or isinstance(body, _IN_MEMORY) else Attempts(),
            (self.inner, request, stream, timeout, verify, cert, proxies),
            request.method or "GET",
            url,
            request.headers,
            _origin(url) if origin is None else origin,
        )

    def close(self) -> None:
        """Close ``inner`` (its connection pool)."""
        self.inner.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """requests pickles a session's adapters: the settings travel, locks and tokens do not."""
        settings = self.retrier.settings()
        if settings["token"] is not None:
            raise TypeError(
                "a RetryAdapter with a token= cannot be pickled: its TokenSource holds a live "
                "credential and locks; mount a new RetryAdapter(token=...) after unpickling"
            )
        for name, process, _ in _SCOPES:  # each travels as its scope; "own": a fresh one
            shared = settings[name]
            settings[name] = None if shared is None else ... if shared is process() else "own"
        return _unpickled, (self.inner, settings)


_SCOPES = (("gate", process_gate, HostGate), ("budget", process_budget, RetryBudget))


def _unpickled(inner: BaseAdapter, settings: dict[str, Any]) -> RetryAdapter:
    for name, _, own in _SCOPES:
        if settings[name] == "own":
            settings[name] = own()
    return RetryAdapter(inner, **settings)


#: Origins already read from URLs, by the URL's ``scheme://authority`` split at its "/"s:
#: ``("http:", "", "host:port")``. A session meets few origins often, and requests hands the
#: adapter its URL as a string it has not parsed.
_ORIGINS: dict[tuple[str, ...], str] = {}


def _origin(url: str) -> str:
    """`forbear.origin_of` for ``url``, cached by its ``scheme://authority`` prefix."""
    start = url.find("://")
    end = url.find("/", start + 3)
    prefix = url if end < 0 else url[:end]
    origin = origin_of(prefix)
    # Only a real scheme://authority is kept: a query before any path, or no scheme, is not.
    if start >= 0 and "?" not in prefix and "#" not in prefix:
        if len(_ORIGINS) >= 1024:
            _ORIGINS.clear()
        _ORIGINS[tuple(prefix.split("/", 2))] = origin
    return origin


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
