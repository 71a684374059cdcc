"""How requests' exceptions map to the core's `ErrorKind`.

requests wraps urllib3's errors (``ConnectionError(MaxRetryError(reason=NewConnectionError))``,
``ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected))``, ...), so the kind
is read from the exception and the chain under it. The kind only says whether the request may
have reached the server; the core decides what that means. An exception that maps to no kind
(``SSLError``, ``InvalidURL``, ``ContentDecodingError``, a closed pool, anything unrecognised) is
never retried: the adapter re-raises it as it is.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator

from requests.exceptions import (
    ChunkedEncodingError,
    ConnectTimeout,
    ReadTimeout,
    SSLError,
)
from requests.exceptions import ConnectionError as RequestsConnectionError
from urllib3 import exceptions as urllib3_errors

from forbear import ErrorKind

__all__ = ["CAUSE_KINDS", "ERROR_KINDS", "error_kind"]

#: requests' own exception types that say their kind, first match wins; None: never retried.
ERROR_KINDS: tuple[tuple[type[BaseException], ErrorKind | None], ...] = (
    (ConnectTimeout, ErrorKind.CONNECT_TIMEOUT),
    (ReadTimeout, ErrorKind.READ_TIMEOUT),
    # A body cut short after the headers (raised when the caller reads it, not by a send).
    (ChunkedEncodingError, ErrorKind.DISCONNECT),
    (SSLError, None),
)

#: Causes found under a requests exception and the kind each one is judged as, first match wins.
CAUSE_KINDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], ErrorKind], ...] = (
    # The connection was never made (refused, unreachable, DNS): the server saw nothing.
    ((urllib3_errors.NewConnectionError, ConnectionRefusedError), ErrorKind.CONNECT),
    (urllib3_errors.ConnectTimeoutError, ErrorKind.CONNECT_TIMEOUT),
    # Past connecting: the server may have acted on the request.
    (urllib3_errors.ReadTimeoutError, ErrorKind.READ_TIMEOUT),
    (
        (
            ConnectionResetError,  # RemoteDisconnected is one too
            ConnectionAbortedError,
            BrokenPipeError,
            http.client.IncompleteRead,
        ),
        ErrorKind.DISCONNECT,
    ),
    ((http.client.HTTPException, urllib3_errors.ProtocolError), ErrorKind.PROTOCOL),
)

#: How deep the cause chain is followed (it is two or three links in practice).
_MAX_DEPTH = 8


def error_kind(exc: BaseException) -> ErrorKind | None:
    """The `ErrorKind` of a requests exception, or None: not a failure forbear retries.

    `ERROR_KINDS` first; a ``ConnectionError`` is judged by what lies under it
    (`CAUSE_KINDS`); anything else is None.
    """
    for exc_type, kind in ERROR_KINDS:
        if isinstance(exc, exc_type):
            return kind
    if not isinstance(exc, RequestsConnectionError):
        return None
    causes = list(_causes(exc))
    for cause_type, kind in CAUSE_KINDS:
        if any(isinstance(cause, cause_type) for cause in causes):
            return kind
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Everything under ``exc``: ``__cause__``, ``__context__``, exception args, ``.reason``."""
    seen = {id(exc)}
    pending = [(exc, 0)]
    while pending:
        current, depth = pending.pop()
        if depth >= _MAX_DEPTH:
            continue
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(arg for arg in current.args if isinstance(arg, BaseException))
        for cause in linked:
            if isinstance(cause, BaseException) and id(cause) not in seen:
                seen.add(id(cause))
                yield cause
                pending.append((cause, depth + 1))
