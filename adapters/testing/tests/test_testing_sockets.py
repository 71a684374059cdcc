"""Connection-level faults: resets, silence, half responses, refused ports."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from forbear_testing import HALF_RESPONSE, RawFaults, RawMode, refused_port


def test_reset_at_once(raw_faults: RawFaults) -> None:
    """RESET resets the connection as soon as it is accepted, reading nothing."""
    raw_faults.mode = RawMode.RESET
    with pytest.raises(httpx.TransportError):
        httpx.get(raw_faults.url + "/x", timeout=2.0)
    (arrival,) = raw_faults.arrivals()
    assert (arrival.raw, arrival.mode) == (b"", RawMode.RESET)


def test_reset_after_request_reads_the_whole_request_first(raw_faults: RawFaults) -> None:
    """RESET_AFTER_REQUEST reads the request, body included, then resets (RST, not FIN)."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.post(raw_faults.url + "/orders", content=b"order-body", timeout=2.0)
    (arrival,) = raw_faults.arrivals()
    assert arrival.raw.startswith(b"POST /orders HTTP/1.1\r\n")
    assert arrival.raw.endswith(b"\r\n\r\norder-body")


def test_reset_is_a_real_rst(raw_faults: RawFaults) -> None:
    """A raw socket sees ECONNRESET, not an orderly end of stream."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    with socket.create_connection(("127.0.0.1", raw_faults.port), timeout=2.0) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            while sock.recv(1024):
                pass


def test_chunked_request_is_read_to_its_end(raw_faults: RawFaults) -> None:
    """A chunked (generator) body is read to its last chunk before the fault."""
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.put(raw_faults.url + "/u", content=iter([b"ab", b"cd"]), timeout=2.0)
    assert raw_faults.arrivals()[0].raw.endswith(b"0\r\n\r\n")


def test_never_answer_gives_a_read_timeout(raw_faults: RawFaults) -> None:
    """NEVER_ANSWER reads the request and holds the connection without a word."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(raw_faults.url + "/x", timeout=0.2)
    assert len(raw_faults.arrivals()) == 1


def test_half_response_is_cut_short(raw_faults: RawFaults) -> None:
    """HALF_RESPONSE sends headers promising more body than it sends, then closes."""
    raw_faults.mode = RawMode.HALF_RESPONSE
    with httpx.Client(timeout=2.0) as client, client.stream("GET", raw_faults.url) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == "1000"
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    assert HALF_RESPONSE.endswith(b"x" * 100)


def test_arrivals_count_every_connection(raw_faults: RawFaults) -> None:
    """Each connection is one arrival, whatever the mode."""
    for mode in (RawMode.RESET, RawMode.RESET_AFTER_REQUEST, RawMode.HALF_RESPONSE):
        raw_faults.mode = mode
        with pytest.raises(httpx.TransportError):
            httpx.get(raw_faults.url, timeout=2.0).raise_for_status()
    assert [a.mode for a in raw_faults.arrivals()] == [
        RawMode.RESET,
        RawMode.RESET_AFTER_REQUEST,
        RawMode.HALF_RESPONSE,
    ]


def test_reset_forgets_and_restores_the_default_mode(raw_faults: RawFaults) -> None:
    """reset clears arrivals, returns to the default mode and drops held connections."""
    raw_faults.mode = RawMode.NEVER_ANSWER
    with socket.create_connection(("127.0.0.1", raw_faults.port), timeout=2.0) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        while not raw_faults.arrivals() or not raw_faults.arrivals()[0].raw:
            threading.Event().wait(0.005)
        raw_faults.reset()
        assert raw_faults.arrivals() == []
        assert raw_faults.mode is RawMode.RESET_AFTER_REQUEST
        assert sock.recv(1024) == b""  # the held connection was closed


def test_refused_port_refuses() -> None:
    """Connecting to the refused port fails with ECONNREFUSED; nothing is listening."""
    with refused_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2.0)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2.0)


def test_refused_port_fixture(refused_port: int) -> None:
    """The refused_port fixture is a port where connections are refused."""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", refused_port), timeout=2.0)


def test_listener_starts_and_stops_clean() -> None:
    """A RawFaults listener binds 127.0.0.1 and leaves no thread behind when closed."""
    before = set(threading.enumerate())
    with RawFaults(RawMode.NEVER_ANSWER) as raw:
        assert raw.url.startswith("http://127.0.0.1:")
        with socket.create_connection(("127.0.0.1", raw.port), timeout=2.0) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert set(threading.enumerate()) <= before
    with pytest.raises(RuntimeError, match="not running"):
        _ = raw.url
