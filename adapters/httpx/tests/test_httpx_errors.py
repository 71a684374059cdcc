"""`forbear.error_kind` on httpx's exceptions (the adapter's ``failure``), row by row."""

from __future__ import annotations

import httpx
import pytest

from forbear import ErrorKind, error_kind


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (httpx.ConnectError("refused"), ErrorKind.CONNECT),
        (httpx.ConnectTimeout("slow handshake"), ErrorKind.CONNECT_TIMEOUT),
        (httpx.ReadTimeout("no answer"), ErrorKind.READ_TIMEOUT),
        (httpx.WriteTimeout("stalled upload"), ErrorKind.WRITE_TIMEOUT),
        (httpx.ReadError("reset by peer"), ErrorKind.DISCONNECT),
        (httpx.WriteError("broken pipe"), ErrorKind.DISCONNECT),
        (httpx.RemoteProtocolError("illegal header line"), ErrorKind.PROTOCOL),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            ErrorKind.DISCONNECT,
        ),
        (httpx.PoolTimeout("pool exhausted"), None),
        (httpx.LocalProtocolError("bad request line"), None),
        (httpx.UnsupportedProtocol("ftp://"), None),
        (httpx.ProxyError("proxy said no"), None),
        (httpx.CloseError("close failed"), None),
        (OSError("not an httpx error"), None),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_error_kind(error: BaseException, kind: ErrorKind | None) -> None:
    """Each httpx exception maps to the kind that says whether the server may have seen it."""
    assert error_kind(error) is kind
