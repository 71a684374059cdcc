"""Error envelopes: `parse_error` reads what a server said went wrong; `APIError` carries it.

`parse_error` understands the flat ``{"statusCode", "message", "error"}`` envelope, the nested
``{"error": {"code", "message", "request_id"}}`` envelope, RFC 9457 problem details and plain
text. It is pure and total: it looks at no more than `MAX_ERROR_BODY` of the body, bounds
every string it keeps, and never raises, whatever the status, headers or body. Nothing here
reads or keeps a header other than ``X-Request-Id`` and ``Retry-After``, so a token, an API key
or a cookie cannot reach an `ErrorInfo`, an exception message or a log line through this module.
No I/O and no retry rule live here: `decide` alone says what to do about an error.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ._policy import DEFAULT_RETRY_STATUSES
from ._retry_after import header_value, parse_retry_after
from ._state import Decision

__all__ = [
    "MAX_ERROR_BODY",
    "MAX_ERROR_MESSAGE",
    "APIError",
    "BadRequest",
    "Conflict",
    "ErrorInfo",
    "Forbidden",
    "Gone",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "Unprocessable",
    "parse_error",
]

#: The most of a body `parse_error` looks at (bytes, or characters for a ``str`` body). A longer
#: body is cut here before parsing; cut JSON is usually invalid and is then read as text.
MAX_ERROR_BODY: Final = 64 * 1024
#: The longest message kept, in characters, so a hostile body cannot flood logs.
MAX_ERROR_MESSAGE: Final = 500
#: The longest error category, code or request id kept, in characters.
_MAX_FIELD: Final = 200
#: The longest method and URL shown in an `APIError`'s message.
_MAX_METHOD: Final = 20
_MAX_URL: Final = 500

#: Body members that carry a request id, in order of preference.
_REQUEST_ID_MEMBERS: Final = ("request_id", "requestId")
#: RFC 9457 section 4.2.1: this problem type says nothing beyond the status.
_BLANK_PROBLEM_TYPE: Final = "about:blank"
#: Unicode categories that could rewrite a log line (controls, bidi overrides, line breaks).
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What an error response said, in one shape whatever envelope the server used."""

    #: The HTTP status. It wins over any status the body claims.
    status: int
    #: The error category: the flat envelope's ``error`` ("Bad Request") or a problem's ``title``.
    error: str | None
    #: A stable machine-readable code: the nested envelope's ``code``, a flat ``code`` member
    #: or a problem's ``type`` (unless ``about:blank``). Match on this, not on `message`.
    code: str | None
    #: A human-readable description: ``message``, a problem's ``detail``, or the first line of
    #: a text body (an HTML page's title). Single line, at most `MAX_ERROR_MESSAGE` characters.
    message: str | None
    #: The server's id for the request, from the body or else the ``X-Request-Id`` header.
    request_id: str | None
    #: Seconds the server asked to wait (``Retry-After``), or None when it named no valid wait.
    retry_after: float | None


def parse_error(
    status: int,
    headers: Mapping[str, str] | Any,
    body: bytes | str | None,
    *,
    wall: float | None = None,
) -> ErrorInfo:
    """Read an error response into an `ErrorInfo`. Never raises.

    ``headers`` may be any mapping (a dict of any case, httpx, requests or aiohttp headers);
    ``body`` the raw bytes (decoded as UTF-8, invalid bytes replaced), text, or None. Members of
    the wrong type are ignored. ``wall`` is the Unix time for an HTTP-date ``Retry-After``
    (default now).
    """
    fields = _read_body(_bounded_text(body))
    request_id = fields.get("request_id") or _clean(_header(headers, "X-Request-Id"), _MAX_FIELD)
    return ErrorInfo(
        status=_status(status),
        error=fields.get("error"),
        code=fields.get("code"),
        message=fields.get("message"),
        request_id=request_id,
        retry_after=parse_retry_after(_header(headers, "Retry-After"), wall=wall),
    )


def _status(status: Any) -> int:
    if isinstance(status, int):
        return status
    try:
        return int(status)
    except Exception:  # a caller's odd status object must not turn one error into another
        return 0


def _header(headers: object, name: str) -> str | None:
    try:
        return header_value(headers, name)
    except Exception:  # a headers object of any shape must not turn one error into another
        return None


def _bounded_text(body: object) -> str:
    if isinstance(body, str):
        text = body[:MAX_ERROR_BODY]
    elif isinstance(body, (bytes, bytearray, memoryview)):
        text = bytes(body[:MAX_ERROR_BODY]).decode("utf-8", errors="replace")
    else:
        return ""
    return text.lstrip("\ufeff")  # a byte-order mark is not part of the content (RFC 8259 8.1)


def _read_body(text: str) -> dict[str, str | None]:
    """The envelope's fields by name; a body that is not a JSON envelope is read as text."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            data = json.loads(stripped)
        except (ValueError, RecursionError):  # cut, malformed or hostile JSON: read it as text
            pass
        else:
            if isinstance(data, dict):
                return _read_object(data)
            if isinstance(data, str):
                return {"message": _first_line(data)}
            return {}  # an array, a number, true/false/null: no envelope to read
    return {"message": _title(stripped) if stripped[:1] == "<" else _first_line(stripped)}


def _read_object(data: dict[str, Any]) -> dict[str, str | None]:
    nested = data.get("error")
    if isinstance(nested, dict):  # {"error": {"code", "message", "request_id"}}
        return {
            "code": _member(nested, "code"),
            "message": _member(nested, "message", MAX_ERROR_MESSAGE),
            "request_id": _request_id(nested) or _request_id(data),
        }
    # The flat envelope, with RFC 9457 problem members filling whatever it leaves out.
    problem_type = _member(data, "type")
    if problem_type == _BLANK_PROBLEM_TYPE:
        problem_type = None
    return {
        "error": _member(data, "error") or _member(data, "title"),
        "code": _member(data, "code") or problem_type,
        "message": _member(data, "message", MAX_ERROR_MESSAGE)
        or _member(data, "detail", MAX_ERROR_MESSAGE),
        "request_id": _request_id(data),
    }


def _member(data: dict[str, Any], name: str, limit: int = _MAX_FIELD) -> str | None:
    value = data.get(name)
    return _clean(value, limit) if isinstance(value, str) else None


def _request_id(data: dict[str, Any]) -> str | None:
    for name in _REQUEST_ID_MEMBERS:
        value = _member(data, name)
        if value:
            return value
    return None


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        cleaned = _clean(line, MAX_ERROR_MESSAGE)
        if cleaned:
            return cleaned
    return None


def _title(html: str) -> str | None:
    """An HTML page's ``<title>`` (a load balancer's error page), else its first line."""
    # str.find, not a regular expression: linear even on a page of unclosed title tags.
    lowered = html.lower()
    start = lowered.find("<title")
    opened = lowered.find(">", start) + 1 if start != -1 else 0
    end = lowered.find("</title", opened) if opened else -1
    if end != -1:
        title = _clean(html[opened:end], MAX_ERROR_MESSAGE)
        if title:
            return title
    return _first_line(html)


def _clean(text: str | None, limit: int) -> str | None:
    """One line of at most ``limit`` characters, safe to log, or None when nothing is left."""
    if text is None:
        return None
    text = text[: 4 * limit]  # collapsing whitespace below shrinks it; never scan more
    if not text.isprintable():
        text = "".join(_safe_char(char) for char in text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text or None


def _safe_char(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cs":  # a lone surrogate from a JSON escape cannot be encoded for a log
        return "\ufffd"
    return " " if category in _UNSAFE_CATEGORIES else char


class APIError(Exception):
    """An error response, with what the server said and the attempts that led to it.

    Build one with `APIError.from_info`, which picks the subclass for the status. The message
    shows the status, code or category, message and request id, and the method and URL when
    given (without userinfo, query or fragment): never a header value other than the request
    id, so never a token, an API key or a cookie.
    """

    #: What the server said.
    info: ErrorInfo
    #: Every decision made for the request, oldest first (see `Decision.describe`).
    history: tuple[Decision, ...]
    #: The request method, upper-case, when known.
    method: str | None
    #: The request URL without userinfo, query or fragment (they can carry credentials).
    url: str | None

    def __init__(
        self,
        info: ErrorInfo,
        *,
        history: Iterable[Decision] = (),
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.info = info
        self.history = tuple(history)
        method = _clean(method, _MAX_METHOD) if isinstance(method, str) else None
        self.method = method.upper() if method else None
        self.url = _display_url(url)
        super().__init__(str(self))

    @classmethod
    def from_info(
        cls,
        info: ErrorInfo,
        *,
        history: Iterable[Decision] = (),
        method: str | None = None,
        url: str | None = None,
    ) -> APIError:
        """The exception for ``info``: the subclass its status means, whichever class is asked."""
        error_class = _ERROR_CLASSES.get(info.status)
        if error_class is None:
            error_class = ServerError if _is_server_error(info.status) else APIError
        return error_class(info, history=history, method=method, url=url)

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self.info.status

    @property
    def retryable(self) -> bool:
        """Whether the status says trying again later may succeed (429 and 5xx)."""
        return self.info.status in DEFAULT_RETRY_STATUSES or _is_server_error(self.info.status)

    def __str__(self) -> str:
        info = self.info
        text = str(info.status)
        label = info.code or info.error
        if label:
            text += f" {label}"
        if info.message:
            text += f": {info.message}"
        if info.request_id:
            text += f" (request_id {info.request_id})"
        if self.method or self.url:
            text += " for " + " ".join(part for part in (self.method, self.url) if part)
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the info, then restore history, method, url and any notes.
        return (type(self), (self.info,), self.__dict__)


class BadRequest(APIError):
    """400: the request is malformed or invalid; fix it before sending it again."""


class Unauthorized(APIError):
    """401: the credential is missing, invalid or expired."""


class Forbidden(APIError):
    """403: the credential is valid but may not do this."""


class NotFound(APIError):
    """404: no such resource, or not one this credential may see."""


class Conflict(APIError):
    """409: the resource's state changed, or an idempotency key was reused with another body."""


class Gone(APIError):
    """410: the resource expired (an upload session, say); start over."""


class Unprocessable(APIError):
    """422: well-formed, but the server cannot act on it."""


class RateLimited(APIError):
    """429: too many requests; ``info.retry_after`` says how long the server asked to wait."""


class ServerError(APIError):
    """5xx: a failure on the server's side or at its edge."""


#: The exception class for each status with a meaning of its own; other 5xx are `ServerError`.
_ERROR_CLASSES: Final[dict[int, type[APIError]]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Unprocessable,
    429: RateLimited,
}


def _is_server_error(status: int) -> bool:
    return 500 <= status <= 599  # RFC 9110 section 15: status codes run from 100 to 599


def _display_url(url: str | None) -> str | None:
    """The URL without the parts that can carry credentials: userinfo, query, fragment."""
    if not url:
        return None
    try:
        parts = urlsplit(str(url))
    except ValueError:  # an unbalanced IPv6 bracket, say: show nothing rather than guess
        return None
    host = parts.netloc.rpartition("@")[2]
    return _clean(urlunsplit((parts.scheme, host, parts.path, "", "")), _MAX_URL)
