"""`Faults` and `Emulator`, the base of the three seed API emulators.

An emulator is a `Service` whose app sits behind a fault layer: told to (with `Faults`), it
rate-limits each credential with a token bucket (429 + ``Retry-After``), answers the first N
requests, every Nth request or a seeded random fraction of them with a 5xx, and expires the
tokens it issues after N uses or T seconds. Each emulator renders those answers in its own API's
error envelope. Faults are per instance and `reset` restores the constructor's.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ._limits import TokenBucket, retry_after_seconds
from ._service import Service

__all__ = ["NO_FAULTS", "Emulator", "Faults", "phrase", "read_json"]

_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    422: "Unprocessable Entity",  # the seeds' wording (Python 3.13 renamed it)
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def phrase(status: int) -> str:
    """The reason phrase the seed documents use for ``status``."""
    return _PHRASES.get(status) or HTTPStatus(status).phrase


@dataclass(frozen=True, slots=True)
class Faults:
    """What an emulator does wrong on purpose. The default: nothing.

    Injected 5xx answers (``status``) hit the first ``fail_first`` requests, then every
    ``every``-th request (counting from the first), and a ``fraction`` of the rest drawn from
    ``random.Random(seed)``; they carry ``Retry-After: retry_after`` when it is set. ``rate``
    (requests a second, plus ``burst``) rate-limits each credential (API key or bearer token)
    with a token bucket answering 429 + ``Retry-After``. ``token_uses`` / ``token_ttl`` make
    the tokens an emulator issues expire after that many requests or seconds (Sarucci API).
    """

    fail_first: int = 0
    every: int = 0
    fraction: float = 0.0
    seed: int = 0
    status: int = 503
    retry_after: float | None = None
    rate: float | None = None
    burst: int = 0
    token_uses: int | None = None
    token_ttl: float | None = None

    def __post_init__(self) -> None:
        for name in ("fail_first", "every", "burst"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Faults.{name} must be an int >= 0, got {value!r}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"Faults.fraction must be within [0, 1], got {self.fraction!r}")
        if not 500 <= self.status <= 599:
            raise ValueError(f"Faults.status must be a 5xx, got {self.status!r}")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"Faults.rate must be a finite number > 0, got {self.rate!r}")
        if self.token_uses is not None and self.token_uses < 1:
            raise ValueError(f"Faults.token_uses must be >= 1, got {self.token_uses!r}")
        if self.token_ttl is not None and not self.token_ttl > 0:
            raise ValueError(f"Faults.token_ttl must be > 0, got {self.token_ttl!r}")


#: No faults at all.
NO_FAULTS = Faults()


class Emulator(Service):
    """A seed API emulator: routes behind the fault layer, state behind one lock."""

    #: Paths the fault layer never touches (health checks).
    unfaulted: frozenset[str] = frozenset()

    def __init__(self, *, faults: Faults = NO_FAULTS) -> None:
        self._lock = threading.RLock()
        self._initial_faults = faults
        self._faults = faults
        self._rng = random.Random(faults.seed)
        self._counted = 0
        self._buckets: dict[str, TokenBucket] = {}
        self._clear_state()
        super().__init__()

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self._faults

    def inject(self, faults: Faults) -> None:
        """Put ``faults`` in force from the next request, counting requests from zero again."""
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)
            self._counted = 0
            self._buckets.clear()

    def _clear(self) -> None:
        self.inject(self._initial_faults)
        with self._lock:
            self._clear_state()

    def _clear_state(self) -> None:
        """Subclasses drop their data here (companies, tokens, ...), under the lock."""

    def _routes(self) -> ASGIApp:
        raise NotImplementedError

    def _fault_response(self, scope: Scope, status: int, retry_after: int | None) -> Response:
        raise NotImplementedError

    def _build(self) -> ASGIApp:
        return self._faulting(self._routes())

    def _faulting(self, app: ASGIApp) -> ASGIApp:
        async def faulting(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] not in self.unfaulted:
                fault = self._fault_for(scope)
                if fault is not None:
                    status, retry_after = fault
                    await self._fault_response(scope, status, retry_after)(scope, receive, send)
                    return
            await app(scope, receive, send)

        return faulting

    def _fault_for(self, scope: Scope) -> tuple[int, int | None] | None:
        with self._lock:
            faults = self._faults
            if faults.rate is not None:
                credential = _credential(scope)
                bucket = self._buckets.get(credential)
                if bucket is None:
                    bucket = TokenBucket(faults.rate, faults.burst, now=time.monotonic())
                    self._buckets[credential] = bucket
                wait = bucket.take(time.monotonic())
                if wait > 0:
                    return 429, retry_after_seconds(wait)
            self._counted += 1
            n = self._counted
            failing = (
                n <= faults.fail_first
                or (faults.every > 0 and n % faults.every == 0)
                or (faults.fraction > 0 and self._rng.random() < faults.fraction)
            )
            if not failing:
                return None
            retry_after = None if faults.retry_after is None else math.ceil(faults.retry_after)
            return faults.status, retry_after


def _credential(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key.lower() in (b"x-api-key", b"authorization"):
            return bytes(value).decode("latin-1")
    return ""


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON; ValueError when it is not."""
    body = await request.body()
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("malformed JSON") from exc
