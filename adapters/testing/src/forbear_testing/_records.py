"""What reached a server: `Arrival` and the thread-safe `Recorder` that keeps them.

The recorder wraps any ASGI app: it reads the whole request body, notes the arrival with the
monotonic and wall clocks, replays the body to the app, and notes the status and
``Retry-After`` the app answered with. Arrivals are frozen snapshots; secrets in their headers
never appear in their ``repr``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SECRET_HEADERS", "Arrival", "Recorder"]

#: Request headers whose values are never shown in a `repr` (keys, tokens, cookies).
SECRET_HEADERS: frozenset[str] = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "cookie"}
)


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request as the server received it, and what it was answered."""

    #: The request method, upper-case.
    method: str
    #: The request path, without the query.
    path: str
    #: The raw query string, without the ``?`` (``""`` when none).
    query: str
    #: The request headers in order, names lower-cased.
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    #: The whole request body as received (a chunked body reassembled).
    body: bytes = field(repr=False)
    #: ``time.monotonic()`` when the request's headers arrived.
    time: float
    #: ``time.time()`` at the same moment, to compare with HTTP-dates.
    wall: float
    #: The status answered, or None while the answer has not started.
    status: int | None = None
    #: The ``Retry-After`` value sent with the answer, if any.
    retry_after: str | None = None

    def header(self, name: str) -> str | None:
        """One request header's value (repeated fields joined by ``", "``), or None."""
        name = name.lower()
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None

    def __repr__(self) -> str:
        shown = [(k, "<redacted>" if k in SECRET_HEADERS else v) for k, v in self.headers]
        return (
            f"Arrival({self.method} {self.path}{'?' + self.query if self.query else ''}, "
            f"status={self.status}, retry_after={self.retry_after!r}, time={self.time:.3f}, "
            f"body={len(self.body)} bytes, headers={shown!r})"
        )


@dataclass(slots=True)
class _Record:
    arrival: Arrival
    status: int | None = None
    retry_after: str | None = None

    def snapshot(self) -> Arrival:
        a = self.arrival
        return Arrival(
            a.method, a.path, a.query, a.headers, a.body, a.time, a.wall,
            self.status, self.retry_after,
        )  # fmt: skip


class Recorder:
    """Keeps every arrival at the app it wraps; safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[_Record] = []

    def arrivals(self, path: str | None = None) -> list[Arrival]:
        """Every arrival so far, oldest first; only those to ``path`` when given."""
        with self._lock:
            records = list(self._records)
        return [r.snapshot() for r in records if path is None or r.arrival.path == path]

    def count(self, path: str | None = None) -> int:
        """How many requests arrived (at ``path`` when given)."""
        with self._lock:
            return sum(1 for r in self._records if path is None or r.arrival.path == path)

    def clear(self) -> None:
        """Forget every arrival."""
        with self._lock:
            self._records.clear()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """An ASGI app that records each HTTP request, then hands it to ``app``."""

        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            now, wall = time.monotonic(), time.time()
            body, complete = await _read_body(receive)
            arrival = Arrival(
                method=scope["method"].upper(),
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=tuple(
                    (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
                ),
                body=body,
                time=now,
                wall=wall,
            )
            record = _Record(arrival)
            with self._lock:
                self._records.append(record)
            if not complete:
                return  # the client went away mid-body: nothing to answer
            await app(scope, _replay(body, receive), self._noting(record, send))

        return recording

    def _noting(self, record: _Record, send: Send) -> Send:
        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                retry_after = None
                for key, value in message.get("headers", ()):
                    if key.lower() == b"retry-after":
                        retry_after = value.decode("latin-1")
                with self._lock:
                    record.status, record.retry_after = int(message["status"]), retry_after
            await send(message)

        return noting


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that yields ``body`` once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
