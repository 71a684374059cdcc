"""`Attempts`: requests' part of the core's loop for one logical request.

It says how requests sends a prepared request once with extra headers (through the wrapped
adapter), how its responses and errors read as outcomes, whether a body can be sent again
(rewinding a file body to where it started), and how a discarded response is released. The
final response is returned as the wrapped adapter's ``send`` returned it, unread.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import EllipsisType
from typing import Any

from requests.adapters import BaseAdapter
from requests.models import PreparedRequest, Response

from forbear import Outcome, drain_length, error_kind

__all__ = ["Attempts"]


class Attempts:
    """One logical request's sends (a `forbear.SyncAdapter`): its send options, file offset."""

    __slots__ = ("inner", "options", "start")

    def __init__(self, inner: BaseAdapter, options: tuple[Any, ...]) -> None:
        self.inner = inner
        self.options = options
        self.start: int | EllipsisType | None = ...  # a file body's offset; ...: not sent yet

    def send(self, request: PreparedRequest, headers: Mapping[str, str] | None) -> Response:
        body = request.body
        if self.start is ...:
            self.start = _offset(body)
        elif self.start is not None:
            body.seek(self.start)  # type: ignore[union-attr]
        if headers:
            # On a copy: requests builds a redirect from the caller's request, not this one.
            request = request.copy()
            request.headers.update(headers)
        return self.inner.send(request, *self.options)

    @staticmethod
    def outcome(response: Response) -> Outcome:
        return Outcome(response.status_code, response.headers)

    failure = staticmethod(error_kind)

    def replayable(self, request: PreparedRequest) -> bool:
        body = request.body
        return self.start is not None or body is None or isinstance(body, _IN_MEMORY)

    @staticmethod
    def release(response: Response) -> None:
        try:
            if drain_length(response.headers) is not None:
                response.raw.read(decode_content=False)  # its connection goes back to the pool
        except Exception:
            pass  # the connection is dropped instead of reused; the close below still runs
        finally:
            response.close()


_IN_MEMORY = (bytes, bytearray, str, list, tuple)


def _offset(body: Any) -> int | None:
    """Where a seekable file body starts, or None: no file, or one that cannot seek."""
    if not (hasattr(body, "read") and hasattr(body, "seek") and hasattr(body, "tell")):
        return None
    try:
        seekable = getattr(body, "seekable", None)
        position = body.tell() if seekable is None or seekable() else None
    except (OSError, ValueError):  # a pipe, a socket file, a closed file
        return None
    return position if isinstance(position, int) else None
