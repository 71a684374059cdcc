"""`forbear.error_kind` and `forbear.flow.read_attempt`: the core's one reading of client objects.

The per-library rows are pinned in each transport adapter's ``test_*_errors.py``, with the
library's real exceptions; here, what holds without any client library.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from forbear import ErrorKind, error_kind


def test_reading_imports_no_client_library() -> None:
    """A library that was never imported cannot have made the object: none is imported."""
    script = (
        "import sys, forbear\n"
        "assert forbear.error_kind(ConnectionResetError()) is forbear.ErrorKind.DISCONNECT\n"
        "assert forbear.flow.read_attempt(object()) is None\n"
        "assert forbear.flow.read_attempt(ValueError()) is None\n"
        "loaded = {'httpx', 'requests', 'urllib3', 'aiohttp', 'http.client'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(111, "refused"), ErrorKind.CONNECT),
        (ConnectionResetError(104, "reset"), ErrorKind.DISCONNECT),
        (ConnectionAbortedError(103, "aborted"), ErrorKind.DISCONNECT),
        (BrokenPipeError(32, "broken pipe"), ErrorKind.DISCONNECT),
        (TimeoutError(), None),  # the caller's own deadline (asyncio's, aiohttp's total)
        (OSError("anything else"), None),
        (ValueError("not a transport failure"), None),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_socket_errors_a_client_let_through_have_their_kind(
    exc: BaseException, kind: ErrorKind | None
) -> None:
    """A refused connection never left; a reset, abort or broken pipe may have reached it."""
    assert error_kind(exc) is kind
