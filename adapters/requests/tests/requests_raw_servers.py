"""Raw loopback servers for what the fault server cannot script (bodies cut short), and their
fixtures (registered by ``conftest.py``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

#: A 200 promising ten body bytes and sending two.
PARTIAL_200 = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"
#: A 302 to ``/land`` promising ten body bytes and sending two.
PARTIAL_302 = b"HTTP/1.1 302 Found\r\nLocation: /land\r\nContent-Length: 10\r\n\r\nab"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class SocketServer:
    """A loopback listener: reads each request's head, sends ``answer(path)``, then ends its
    side of the connection cleanly (no reset), or, while ``hold`` is set, stalls there."""

    def __init__(self, answer: Callable[[str], bytes]) -> None:
        self.answer = answer
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        #: The path of each request, one per connection, in arrival order.
        self.paths: list[str] = []
        self.hold = False
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        """How many connections were accepted."""
        return len(self.paths)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._open.append(conn)
            conn.settimeout(2.0)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                received += chunk
            path = received.split(b" ", 2)[1].decode() if received.count(b" ") >= 2 else ""
            self.paths.append(path)
            conn.sendall(self.answer(path))
            if not self.hold:
                conn.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._open:
            conn.close()
        self._listener.close()


def _serving(answer: Callable[[str], bytes], *, hold: bool = False) -> Iterator[SocketServer]:
    server = SocketServer(answer)
    server.hold = hold
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def partial_server() -> Iterator[SocketServer]:
    """Answers every request with `PARTIAL_200` and stalls (``hold``; unset it to close)."""
    yield from _serving(lambda path: PARTIAL_200, hold=True)


@pytest.fixture
def cut_redirect() -> Iterator[SocketServer]:
    """``/cut`` answers `PARTIAL_302` and closes; any other path answers 200 ``ok``."""
    yield from _serving(lambda path: PARTIAL_302 if path == "/cut" else OK)
