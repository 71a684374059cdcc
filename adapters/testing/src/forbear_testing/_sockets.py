"""Connection-level faults no HTTP framework produces: `RawFaults` and `refused_port`.

`RawFaults` is a tiny TCP listener on 127.0.0.1 (its own thread, a free port) that accepts
connections and then misbehaves as its `RawMode` says: reset at once, reset after reading the
whole request, never answer, or answer half a response and close. It counts every connection
and keeps the raw bytes read. `refused_port` holds a port where nothing listens, so connecting
to it is refused.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType

import h11

from ._service import HOST

__all__ = ["HALF_RESPONSE", "RawArrival", "RawFaults", "RawMode", "refused_port"]

#: What `RawMode.HALF_RESPONSE` sends: a 200 promising 1000 body bytes, followed by 100.
HALF_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100
)


class RawMode(str, Enum):
    """How `RawFaults` treats each connection it accepts."""

    #: Reset (RST, ``SO_LINGER`` 0) as soon as it is accepted, reading nothing.
    RESET = "reset"
    #: Read the whole request, then reset: the request reached the server, no answer came.
    RESET_AFTER_REQUEST = "reset-after-request"
    #: Read the request and never answer, holding the connection open (read timeouts).
    NEVER_ANSWER = "never-answer"
    #: Read the request, send `HALF_RESPONSE` (headers promising more body than sent), close.
    HALF_RESPONSE = "half-response"


@dataclass(frozen=True, slots=True)
class RawArrival:
    """One accepted connection."""

    #: The bytes read from it before the fault (``b""`` for `RawMode.RESET`).
    raw: bytes = field(repr=False)
    #: ``time.monotonic()`` when it was accepted.
    time: float
    #: The mode it was treated with.
    mode: RawMode


class _Connection:
    def __init__(self, sock: socket.socket, mode: RawMode, record: list[bytes]) -> None:
        self.sock = sock
        self.mode = mode
        self.record = record  # one-element list: the raw bytes so far, shared with the log
        self.parser = h11.Connection(h11.SERVER)
        self.answered = False

    def feed(self, data: bytes) -> bool:
        """Take bytes read; True once the whole request is in."""
        self.record[0] += data
        try:
            self.parser.receive_data(data)
            while True:
                event = self.parser.next_event()
                if event is h11.NEED_DATA:
                    return False
                if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return True
        except h11.RemoteProtocolError:
            return True  # not HTTP: misbehave anyway


class RawFaults:
    """A TCP listener on 127.0.0.1 that breaks every connection the way `mode` says.

    Use it as a context manager (``with RawFaults(RawMode.NEVER_ANSWER) as raw: raw.url``).
    `mode` may be changed at any time; it applies to connections accepted afterwards.
    """

    def __init__(self, mode: RawMode = RawMode.RESET_AFTER_REQUEST) -> None:
        self._default_mode = RawMode(mode)
        self._mode = self._default_mode
        self._lock = threading.Lock()
        self._log: list[tuple[list[bytes], float, RawMode]] = []
        self._listener: socket.socket | None = None
        self._wake_read: socket.socket | None = None
        self._wake_write: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._drop_held = False
        self.port = 0

    def __repr__(self) -> str:
        return f"RawFaults({self._mode.value}, port={self.port})"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` while running."""
        if self._thread is None:
            raise RuntimeError("RawFaults is not running: use `with RawFaults(...)`")
        return f"http://{HOST}:{self.port}"

    @property
    def mode(self) -> RawMode:
        """How connections accepted from now on are treated."""
        return self._mode

    @mode.setter
    def mode(self, mode: RawMode) -> None:
        with self._lock:
            self._mode = RawMode(mode)

    def arrivals(self) -> list[RawArrival]:
        """Every connection accepted so far, oldest first."""
        with self._lock:
            return [RawArrival(bytes(raw[0]), at, mode) for raw, at, mode in self._log]

    def reset(self) -> None:
        """Forget the arrivals, close held connections, return to the constructor's mode."""
        with self._lock:
            self._log.clear()
            self._mode = self._default_mode
            self._drop_held = True
        self._wake()

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> RawFaults:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start listening on a free port of 127.0.0.1."""
        if self._thread is not None:
            raise RuntimeError("RawFaults is already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((HOST, 0))
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._wake_read, self._wake_write = socket.socketpair()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._serve, name=f"forbear-raw-{self.port}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop, close every connection and join the thread."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake()
        thread.join(10.0)
        for sock in (self._listener, self._wake_read, self._wake_write):
            if sock is not None:
                sock.close()
        self._thread = self._listener = self._wake_read = self._wake_write = None

    def _wake(self) -> None:
        if self._wake_write is not None:
            with contextlib.suppress(OSError):
                self._wake_write.send(b"!")

    # -- the listener thread -----------------------------------------------------------------

    def _serve(self) -> None:
        assert self._listener is not None and self._wake_read is not None
        held: dict[socket.socket, _Connection] = {}
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            try:
                while not self._stopping:
                    for key, _ in selector.select():
                        sock = key.fileobj
                        if sock is self._wake_read:
                            self._wake_read.recv(1024)
                            if self._drop_held:
                                self._drop_held = False
                                for held_sock in list(held):
                                    selector.unregister(held_sock)
                                    held.pop(held_sock).sock.close()
                        elif sock is self._listener:
                            self._accept(selector, held)
                        elif isinstance(sock, socket.socket) and sock in held:
                            self._readable(selector, held, held[sock])
            finally:
                for conn in held.values():
                    conn.sock.close()

    def _accept(
        self, selector: selectors.BaseSelector, held: dict[socket.socket, _Connection]
    ) -> None:
        assert self._listener is not None
        try:
            sock, _ = self._listener.accept()
        except BlockingIOError:
            return
        record = [b""]
        with self._lock:
            mode = self._mode
            self._log.append((record, time.monotonic(), mode))
        if mode is RawMode.RESET:
            _reset(sock)
            return
        sock.setblocking(False)
        held[sock] = _Connection(sock, mode, record)
        selector.register(sock, selectors.EVENT_READ)

    def _readable(
        self,
        selector: selectors.BaseSelector,
        held: dict[socket.socket, _Connection],
        conn: _Connection,
    ) -> None:
        try:
            data = conn.sock.recv(65536)
        except OSError:
            data = b""
        if not data:  # the client closed (or reset) its end
            selector.unregister(conn.sock)
            held.pop(conn.sock).sock.close()
            return
        if conn.answered:
            return  # NEVER_ANSWER: swallow whatever else comes
        with self._lock:
            complete = conn.feed(data)
        if not complete:
            return
        conn.answered = True
        if conn.mode is RawMode.NEVER_ANSWER:
            return
        selector.unregister(conn.sock)
        del held[conn.sock]
        if conn.mode is RawMode.RESET_AFTER_REQUEST:
            _reset(conn.sock)
        else:
            with contextlib.suppress(OSError):
                conn.sock.setblocking(True)
                conn.sock.settimeout(2.0)
                conn.sock.sendall(HALF_RESPONSE)
            conn.sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: ``SO_LINGER`` on, with a zero timeout."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port of 127.0.0.1 where nothing listens: connecting to it is refused.

    The port stays bound (without listening) for the block, so nothing else can take it.
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind((HOST, 0))
        yield holder.getsockname()[1]
    finally:
        holder.close()
