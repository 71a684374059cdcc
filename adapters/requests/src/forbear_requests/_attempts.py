"""requests' part of the core's loop: how one logical request's attempts are sent and read.

It says how requests sends a prepared request once with extra headers (through the wrapped
adapter), how its responses and errors read as outcomes, whether a body can be sent again
(rewinding a file body to where it started), and how a discarded response is released. The
final response is returned as the wrapped adapter's ``send`` returned it, unread.

What the core's loop calls the request is a `Call`: the wrapped adapter, the prepared request
and requests' send options, in one tuple made per logical request. A body in memory (or none,
the common case) needs nothing else, so `SENDS`, one stateless `Sends` for every request and
thread, sends it: a first attempt that succeeds makes no object of forbear's here. Only a file
or stream body gets an `Attempts` of its own, which keeps where the file started.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import EllipsisType
from typing import Any

from requests.adapters import BaseAdapter
from requests.models import PreparedRequest, Response

from forbear import drain_length, error_kind
from forbear.flow import Reading

__all__ = ["SENDS", "Attempts", "Call", "Sends", "in_memory"]

#: One logical request, as the core's loop carries it: ``(inner, request, stream, timeout,
#: verify, cert, proxies)``, the wrapped adapter first and then ``HTTPAdapter.send``'s arguments.
Call = tuple[BaseAdapter, PreparedRequest, bool, Any, bool | str, Any, Mapping[str, str] | None]

_IN_MEMORY = (bytes, bytearray, str, list, tuple)


def in_memory(body: object) -> bool:
    """Whether ``body`` can be sent again as it is: none, or bytes/str/a list in memory."""
    return body is None or isinstance(body, _IN_MEMORY)


class Sends:
    """The sends of a request whose body is in memory (a `forbear.SyncAdapter` of `Call`s).

    Stateless: one (`SENDS`) serves every request on every thread.
    """

    __slots__ = ()

    def send(self, call: Call, headers: Mapping[str, str] | None) -> Response:
        inner, request, stream, timeout, verify, cert, proxies = call
        if headers:
            # On a copy: requests builds a redirect from the caller's request, not this one.
            request = request.copy()
            request.headers.update(headers)
        return inner.send(request, stream, timeout, verify, cert, proxies)

    def outcome(self, response: Response) -> Reading:
        # A method, not a staticmethod: the core's call to it is then specialized by the
        # interpreter instead of looked up through the type on every request. The plain tuple
        # an `Outcome` would hold: the core reads it by position, and making the `Outcome`
        # subclass costs three times as much.
        return (response.status_code, response.headers, None)

    failure = staticmethod(error_kind)

    def replayable(self, call: Call) -> bool:
        return True  # only in-memory bodies come here (`in_memory`)

    @staticmethod
    def release(response: Response) -> None:
        try:
            if drain_length(response.headers) is not None:
                response.raw.read(decode_content=False)  # its connection goes back to the pool
        except Exception:
            pass  # the connection is dropped instead of reused; the close below still runs
        finally:
            response.close()


SENDS = Sends()


class Attempts(Sends):
    """The sends of one request with a file or stream body: where a file body started."""

    __slots__ = ("start",)

    def __init__(self) -> None:
        self.start: int | EllipsisType | None = ...  # a file body's offset; ...: not sent yet

    def send(self, call: Call, headers: Mapping[str, str] | None) -> Response:
        body = call[1].body
        if self.start is ...:
            self.start = _offset(body)
        elif self.start is not None:
            body.seek(self.start)  # type: ignore[union-attr]
        return Sends.send(self, call, headers)

    def replayable(self, call: Call) -> bool:
        return self.start is not None or in_memory(call[1].body)


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
