"""Tests for `parse_error`, `ErrorInfo` and the `APIError` family (forbear._errors).

The envelopes are quoted from the seed API documents: 000 (partner API) and 001 (policy API)
use the flat ``{"error", "message", "statusCode"}`` envelope, 004 (Sarucci) the nested
``{"error": {"code", "message", "request_id"}}`` one plus an ``X-Request-Id`` header.
"""

from __future__ import annotations

import json
import pickle
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forbear._errors import (
    MAX_ERROR_BODY,
    MAX_ERROR_MESSAGE,
    APIError,
    BadRequest,
    Conflict,
    ErrorInfo,
    Forbidden,
    Gone,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unprocessable,
    parse_error,
)
from forbear._state import Action, Decision

#: Seed 000, "Error details".
PARTNER_BODY = (
    b'{\n  "error": "Bad Request",\n  "message": "legalName is required.",\n  "statusCode": 400\n}'
)
#: Seed 001, "Typical 4xx body".
POLICY_BODY = (
    b'{\n"statusCode": 401,\n"message": "Missing scope: validate",\n"error": "Unauthorized"\n}'
)
#: Seed 004, "Every error response uses the same envelope".
SARUCCI_REQUEST_ID = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
SARUCCI_BODY = (
    b'{\n"error": {\n"code": "company_not_found",\n"message": "company not found",\n'
    b'"request_id": "f47ac10b-58cc-4372-a567-0e02b2c3d479"\n}\n}'
)

SECRET_HEADERS = {
    "Authorization": "Bearer SECRET-TOKEN",
    "X-API-Key": "SECRET-KEY",
    "Cookie": "session=SECRET-COOKIE",
    "Set-Cookie": "session=SECRET-SET-COOKIE; HttpOnly",
    "Proxy-Authorization": "Basic SECRET-PROXY",
}
SECRETS = ("SECRET", "Bearer", "session=")


def info(status: int = 500, **fields: Any) -> ErrorInfo:
    """An `ErrorInfo` with every field but ``status`` defaulting to None."""
    values: dict[str, Any] = dict.fromkeys(
        ("error", "code", "message", "request_id", "retry_after")
    )
    values.update(fields)
    return ErrorInfo(status=status, **values)


# --- the seed envelopes ----------------------------------------------------------------------


def test_partner_flat_envelope() -> None:
    """Seed 000's flat envelope gives its category and message; there is no code."""
    assert parse_error(400, {}, PARTNER_BODY) == info(
        400, error="Bad Request", message="legalName is required."
    )


def test_policy_flat_envelope() -> None:
    """Seed 001's flat envelope (members in another order) reads the same way."""
    assert parse_error(401, {}, POLICY_BODY) == info(
        401, error="Unauthorized", message="Missing scope: validate"
    )


def test_sarucci_nested_envelope() -> None:
    """Seed 004's nested envelope gives code, message and request id."""
    headers = {"X-Request-Id": SARUCCI_REQUEST_ID}
    assert parse_error(404, headers, SARUCCI_BODY) == info(
        404, code="company_not_found", message="company not found", request_id=SARUCCI_REQUEST_ID
    )


def test_body_request_id_wins_over_header() -> None:
    """When body and header both name a request id, the body's own is kept."""
    parsed = parse_error(404, {"X-Request-Id": "from-header"}, SARUCCI_BODY)
    assert parsed.request_id == SARUCCI_REQUEST_ID


def test_header_request_id_fills_a_body_without_one() -> None:
    """A nested envelope without ``request_id`` takes the ``X-Request-Id`` header."""
    body = b'{"error": {"code": "internal_error", "message": "boom"}}'
    parsed = parse_error(500, {"x-request-id": "abc-123"}, body)
    assert (parsed.code, parsed.message, parsed.request_id) == ("internal_error", "boom", "abc-123")


@pytest.mark.parametrize("body", [None, b"", "", b"   \r\n", bytearray()])
def test_no_body_keeps_the_header_request_id(body: bytes | str | None) -> None:
    """A bodiless 504 from a load balancer still carries the ``X-Request-Id`` header."""
    assert parse_error(504, {"X-Request-Id": SARUCCI_REQUEST_ID}, body) == info(
        504, request_id=SARUCCI_REQUEST_ID
    )


def test_str_body_reads_like_bytes() -> None:
    """A body already decoded to text gives the same info as its bytes."""
    assert parse_error(404, {}, SARUCCI_BODY.decode()) == parse_error(404, {}, SARUCCI_BODY)


def test_byte_order_mark_is_ignored() -> None:
    """A UTF-8 byte-order mark before the JSON does not hide the envelope."""
    parsed = parse_error(400, {}, b"\xef\xbb\xbf" + PARTNER_BODY)
    assert parsed.message == "legalName is required."


# --- RFC 9457 problem details ------------------------------------------------------------------


def test_problem_details() -> None:
    """Problem members map title to error, detail to message and type to code."""
    body = json.dumps(
        {
            "type": "https://example.com/probs/out-of-credit",
            "title": "You do not have enough credit.",
            "status": 403,
            "detail": "Your current balance is 30, but that costs 50.",
            "instance": "/account/12345/msgs/abc",
            "request_id": "req-1",
        }
    )
    headers = {"Content-Type": "application/problem+json"}
    assert parse_error(403, headers, body) == info(
        403,
        error="You do not have enough credit.",
        code="https://example.com/probs/out-of-credit",
        message="Your current balance is 30, but that costs 50.",
        request_id="req-1",
    )


def test_problem_about_blank_is_no_code() -> None:
    """The ``about:blank`` problem type says nothing beyond the status: no code."""
    body = b'{"type": "about:blank", "title": "Not Found", "status": 404}'
    assert parse_error(404, {}, body) == info(404, error="Not Found")


def test_problem_camel_case_request_id() -> None:
    """A ``requestId`` member is read as the request id too."""
    body = b'{"title": "Conflict", "detail": "stale", "requestId": "r-9"}'
    assert parse_error(409, {}, body).request_id == "r-9"


def test_flat_members_win_over_problem_members() -> None:
    """When a body carries both, the flat envelope's members are kept."""
    body = b'{"error": "Bad Request", "title": "Other", "message": "m", "detail": "d"}'
    parsed = parse_error(400, {}, body)
    assert (parsed.error, parsed.message) == ("Bad Request", "m")


# --- text and other non-envelope bodies --------------------------------------------------------


def test_plain_text_first_line() -> None:
    """A text body's message is its first non-blank line, trimmed."""
    body = b"\n\n   upstream connect error   \r\nreset reason: overflow\n"
    assert parse_error(503, {}, body) == info(503, message="upstream connect error")


def test_plain_text_is_bounded() -> None:
    """A long line is cut to `MAX_ERROR_MESSAGE` characters, ending in an ellipsis."""
    message = parse_error(500, {}, b"x" * 10_000).message
    assert message is not None
    assert len(message) == MAX_ERROR_MESSAGE
    assert message.endswith("…")


def test_html_error_page_gives_its_title() -> None:
    """A load balancer's HTML page gives its title, not ``<html>``."""
    body = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body></html>"
    assert parse_error(502, {}, body).message == "502 Bad Gateway"


def test_html_with_unclosed_titles_stays_fast() -> None:
    """Thousands of unclosed ``<title>`` tags are read in linear time."""
    started = time.perf_counter()
    parse_error(502, {}, b"<title>" * (MAX_ERROR_BODY // 7))
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "Bad Request", "message": "legalName is required."',  # cut short
        b"{'error': 'single quotes'}",
        b'{"message": "trailing comma",}',
        b"[1, 2",
    ],
)
def test_malformed_json_falls_back_to_text(body: bytes) -> None:
    """Malformed JSON does not raise: its first line becomes the message."""
    assert parse_error(400, {}, body) == info(400, message=body.decode().splitlines()[0])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"message": "in a list"}]', None),
        (b"[]", None),
        (b"null", "null"),
        (b"42", "42"),
        (b"true", "true"),
        (b'"Not Found"', "Not Found"),
        (b'"line one\\nline two"', "line one"),
    ],
)
def test_top_level_json_that_is_not_an_object(body: bytes, message: str | None) -> None:
    """An array carries no envelope; a JSON string is the message; a scalar reads as text."""
    assert parse_error(404, {}, body) == info(404, message=message)


def test_object_without_known_members_has_no_fields() -> None:
    """A JSON object with none of the known members gives no message, not its raw text."""
    assert parse_error(400, {}, b'{"errors": [{"field": "x"}]}') == info(400)


# --- members of the wrong type and a disagreeing body ------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"error": 400, "message": ["legalName is required."], "statusCode": 400},
        {"error": None, "message": {"text": "x"}, "code": 7, "request_id": 12345},
        {"error": True, "message": 1.5, "code": ["a"], "requestId": None},
        {"error": {"code": 404, "message": None, "request_id": 7}},
        {"error": {"code": ["x"], "message": {"a": "b"}, "request_id": []}},
        {"title": 1, "detail": False, "type": 3},
        {"error": "", "message": "   ", "code": "\n"},
    ],
)
def test_members_of_the_wrong_type_are_ignored(body: dict[str, Any]) -> None:
    """Non-string (or blank) members become None; the header request id still fills in."""
    parsed = parse_error(400, {"X-Request-Id": "hdr-1"}, json.dumps(body))
    assert parsed == info(400, request_id="hdr-1")


def test_http_status_wins_over_body_status() -> None:
    """The HTTP status is kept when the body's ``statusCode`` disagrees."""
    body = b'{"statusCode": 200, "error": "OK", "message": "all good"}'
    parsed = parse_error(503, {}, body)
    assert parsed.status == 503
    assert isinstance(APIError.from_info(parsed), ServerError)


def test_problem_status_does_not_override_http_status() -> None:
    """A problem's ``status`` member is ignored in favour of the HTTP status."""
    assert parse_error(500, {}, b'{"status": 404, "title": "Not Found"}').status == 500


def test_control_characters_are_flattened() -> None:
    """Line breaks, escapes and bidi overrides in a message cannot forge a log line."""
    body = json.dumps({"message": "a\nFAKE LOG LINE\r\x1b[31mred\u202egnp.exe\u2028end"})
    assert parse_error(400, {}, body).message == "a FAKE LOG LINE [31mred gnp.exe end"


def test_lone_surrogate_is_replaced() -> None:
    """A lone surrogate escape becomes U+FFFD, so the message can be encoded for a log."""
    message = parse_error(400, {}, b'{"message": "bad \\ud800 char"}').message
    assert message == "bad \ufffd char"
    message.encode("utf-8")


def test_long_fields_are_bounded() -> None:
    """Codes, categories and request ids are cut to 200 characters, messages to 500."""
    body = json.dumps({"error": "e" * 5000, "message": "m" * 5000, "code": "c" * 5000})
    parsed = parse_error(400, {"X-Request-Id": "r" * 5000}, body)
    assert [len(field or "") for field in (parsed.error, parsed.code, parsed.request_id)] == [
        200,
        200,
        200,
    ]
    assert len(parsed.message or "") == MAX_ERROR_MESSAGE


# --- hostile bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b" " * MAX_ERROR_BODY + PARTNER_BODY, " " * MAX_ERROR_BODY + PARTNER_BODY.decode()],
    ids=["bytes", "str"],
)
def test_only_the_first_64_kib_is_read(body: bytes | str) -> None:
    """A valid envelope starting past `MAX_ERROR_BODY` (bytes, or characters) is never seen."""
    assert parse_error(400, {}, body) == info(400)


def test_envelope_within_64_kib_of_a_long_body_is_found() -> None:
    """An envelope followed by padding past the limit is still read."""
    body = PARTNER_BODY + b" " * (2 * MAX_ERROR_BODY)
    assert parse_error(400, {}, body).message == "legalName is required."


def test_envelope_cut_at_64_kib_reads_as_text() -> None:
    """JSON cut at the limit is invalid and reads as text, bounded."""
    body = b'{"message": "' + b"m" * MAX_ERROR_BODY + b'"}'
    message = parse_error(400, {}, body).message
    assert message is not None
    assert message.startswith('{"message": "mmm')
    assert len(message) == MAX_ERROR_MESSAGE


_FIFTY_MB = 50 * 1024 * 1024


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (PARTNER_BODY + b" " * _FIFTY_MB, "legalName is required."),
        (PARTNER_BODY.decode() + " " * _FIFTY_MB, "legalName is required."),
        (b"{" + b"x" * _FIFTY_MB, "{" + "x" * (MAX_ERROR_MESSAGE - 2) + "…"),
        ("x" * _FIFTY_MB, "x" * (MAX_ERROR_MESSAGE - 1) + "…"),
    ],
    ids=["envelope-bytes", "envelope-str", "json-like-bytes", "text-str"],
)
def test_fifty_megabyte_body_costs_little(body: bytes | str, message: str) -> None:
    """A 50 MB body is parsed in little time and memory: only 64 KiB of it is looked at."""
    tracemalloc.start()
    try:
        started = time.perf_counter()
        parsed = parse_error(400, {}, body)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed.message == message
    assert peak < 2 * 1024 * 1024  # a single copy of the body would be 50 MB
    assert elapsed < 1.0


@pytest.mark.parametrize("body", ["[" * 100_000, '{"a":' * 100_000, '{"error":' * 100_000])
def test_deeply_nested_json_does_not_raise(body: str) -> None:
    """Nesting deep enough to exhaust the JSON parser's recursion reads as text."""
    parsed = parse_error(400, {}, body.encode())
    assert parsed.message is not None
    assert parsed.message.startswith(body[:10])


def test_invalid_utf8_is_replaced() -> None:
    """Invalid UTF-8 bytes become U+FFFD; the envelope around them is still read."""
    body = b'{"error": "Bad \xff Request", "message": "caf\xe9 \xc3"}'
    parsed = parse_error(400, {}, body)
    assert (parsed.error, parsed.message) == ("Bad \ufffd Request", "caf\ufffd \ufffd")


def test_invalid_utf8_text_body() -> None:
    """A text body of invalid UTF-8 gives a message with replacement characters."""
    assert parse_error(500, {}, b"\xfe\xffoops\x80").message == "\ufffd\ufffdoops\ufffd"


# --- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"RETRY-AFTER": "soon"}, None),
        ({"Retry-After": "-1"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read(headers: dict[str, str], retry_after: float | None) -> None:
    """``Retry-After`` is read with `parse_retry_after`: valid delays only, any header case."""
    assert parse_error(429, headers, b"").retry_after == retry_after


def test_retry_after_http_date_uses_wall() -> None:
    """An HTTP-date ``Retry-After`` is measured from the given wall clock."""
    headers = {"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"}
    assert parse_error(503, headers, None, wall=784111767.0).retry_after == 10.0


def test_client_header_types() -> None:
    """httpx, requests and aiohttp header objects are read like a dict."""
    httpx = pytest.importorskip("httpx")
    structures = pytest.importorskip("requests.structures")
    multidict = pytest.importorskip("multidict")
    pairs = {"x-request-id": "rid-7", "retry-after": "3"}
    for headers in (
        httpx.Headers(pairs),
        structures.CaseInsensitiveDict(pairs),
        multidict.CIMultiDictProxy(multidict.CIMultiDict(pairs)),
    ):
        parsed = parse_error(429, headers, None)
        assert (parsed.request_id, parsed.retry_after) == ("rid-7", 3.0)


class _BrokenHeaders:
    def get(self, name: str, default: Any = None) -> Any:
        raise RuntimeError("broken")


@pytest.mark.parametrize(
    "headers",
    [None, [], 42, _BrokenHeaders(), {"X-Request-Id": 5, "Retry-After": b"2"}, {1: "x"}],
)
def test_odd_headers_do_not_raise(headers: Any) -> None:
    """Headers of any shape, or with values of the wrong type, are treated as absent."""
    parsed = parse_error(400, headers, PARTNER_BODY)
    assert (parsed.request_id, parsed.retry_after) == (None, None)
    assert parsed.message == "legalName is required."


@pytest.mark.parametrize(("status", "expected"), [("404", 404), (None, 0), (object(), 0)])
def test_odd_status_does_not_raise(status: Any, expected: int) -> None:
    """A status that is not an int is converted when it can be, else becomes 0."""
    assert parse_error(status, {}, b"").status == expected


# --- the exception family ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (410, Gone),
        (422, Unprocessable),
        (429, RateLimited),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
        (402, APIError),
        (408, APIError),
        (418, APIError),
        (451, APIError),
        (200, APIError),
        (600, APIError),
        (0, APIError),
    ],
)
def test_subclass_by_status(status: int, error_class: type[APIError]) -> None:
    """`APIError.from_info` picks the class that means the status, else `APIError` itself."""
    error = APIError.from_info(info(status))
    assert type(error) is error_class
    assert isinstance(error, APIError)
    assert error.status == status


def test_from_info_on_a_subclass_still_picks_by_status() -> None:
    """Asking a subclass for an error picks by status, not by the class asked."""
    assert type(NotFound.from_info(info(429))) is RateLimited


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(status, True) for status in (429, 500, 501, 502, 503, 504, 599)],
        *[(status, False) for status in (400, 401, 403, 404, 408, 409, 410, 422, 600)],
    ],
)
def test_retryable(status: int, retryable: bool) -> None:
    """429 and 5xx errors say trying again later may succeed; other 4xx do not."""
    assert APIError.from_info(info(status)).retryable is retryable


def test_str_of_nested_envelope() -> None:
    """The message shows status, code, message and request id."""
    error = APIError.from_info(parse_error(404, {}, SARUCCI_BODY))
    assert str(error) == (
        "404 company_not_found: company not found (request_id f47ac10b-58cc-4372-a567-0e02b2c3d479)"
    )
    assert repr(error) == f"NotFound({str(error)!r})"


def test_str_of_flat_envelope_uses_the_category() -> None:
    """Without a code the category labels the error."""
    error = APIError.from_info(parse_error(400, {}, PARTNER_BODY))
    assert str(error) == "400 Bad Request: legalName is required."


def test_str_of_bare_status() -> None:
    """An error with nothing but a status shows the status."""
    assert str(APIError.from_info(info(504))) == "504"


def test_str_shows_method_and_url_without_credentials() -> None:
    """Method and URL appear without userinfo, query or fragment."""
    error = APIError.from_info(
        info(404, code="company_not_found"),
        method="get",
        url="https://user:SECRET-PASSWORD@api.example.com/v1/companies/42?api_key=SECRET-KEY#frag",
    )
    assert error.method == "GET"
    assert error.url == "https://api.example.com/v1/companies/42"
    assert str(error) == "404 company_not_found for GET https://api.example.com/v1/companies/42"
    assert "SECRET" not in repr(error)


def test_malformed_url_is_dropped() -> None:
    """A URL that cannot be split is left out rather than shown raw."""
    assert APIError.from_info(info(500), url="http://[::1/path?token=SECRET").url is None


def test_no_secret_header_reaches_str_or_repr() -> None:
    """Tokens, API keys and cookies in the headers appear in no info, message or repr."""
    headers = {**SECRET_HEADERS, "X-Request-Id": SARUCCI_REQUEST_ID, "Retry-After": "1"}
    for status, body in ((404, SARUCCI_BODY), (401, POLICY_BODY), (503, None), (500, b"oops")):
        parsed = parse_error(status, headers, body)
        error = APIError.from_info(parsed, method="POST", url="https://api.example.com/v1/x")
        shown = " ".join((repr(parsed), str(error), repr(error), *map(str, error.args)))
        assert SARUCCI_REQUEST_ID in shown
        for secret in SECRETS:
            assert secret not in shown
        assert b"SECRET" not in pickle.dumps(error)


def test_history_is_kept_as_a_tuple() -> None:
    """The attempt history travels with the error, oldest first."""
    history = [
        Decision(Action.RETRY, 0.5, "backoff", 1, 503),
        Decision(Action.GIVE_UP, 0.0, "attempts-exhausted", 2, 503),
    ]
    error = APIError.from_info(info(503), history=iter(history))
    assert error.history == tuple(history)
    assert [decision.describe() for decision in error.history] == [
        "#1 503: retry (backoff) after 0.500s",
        "#2 503: give-up (attempts-exhausted)",
    ]


def test_pickle_round_trip() -> None:
    """An error survives pickling with its class, info, history, method, URL and notes."""
    parsed = parse_error(429, {"Retry-After": "2", "X-Request-Id": "r-1"}, POLICY_BODY)
    history = (Decision(Action.GIVE_UP, 0.0, "wait-exceeds-max", 1, 429, retry_after=2.0),)
    error = APIError.from_info(parsed, history=history, method="POST", url="https://a.example/x")
    error.__dict__["__notes__"] = ["forbear: POST made 1 send(s)"]  # as add_note does on 3.11+
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is RateLimited
    assert (restored.info, restored.history) == (error.info, error.history)
    assert (restored.method, restored.url) == ("POST", "https://a.example/x")
    assert restored.__dict__["__notes__"] == ["forbear: POST made 1 send(s)"]
    assert str(restored) == str(error)
    assert repr(restored) == repr(error)


def test_error_info_is_frozen_and_slotted() -> None:
    """`ErrorInfo` cannot be changed after it is made and has no per-instance dict."""
    parsed = info(400)
    with pytest.raises(AttributeError):
        parsed.status = 500  # type: ignore[misc]
    assert not hasattr(parsed, "__dict__")


def test_errors_are_raised_and_caught_as_api_error() -> None:
    """Every subclass is caught by ``except APIError``."""
    with pytest.raises(APIError) as caught:
        raise APIError.from_info(parse_error(401, {}, POLICY_BODY))
    assert isinstance(caught.value, Unauthorized)
    assert caught.value.info.message == "Missing scope: validate"


# --- properties --------------------------------------------------------------------------------

_header_values = st.one_of(st.text(), st.binary(), st.integers(), st.none())
_headers = st.one_of(
    st.dictionaries(
        st.sampled_from(["X-Request-Id", "x-request-id", "Retry-After", "retry-after", "Other"])
        | st.text(),
        _header_values,
    ),
    st.none(),
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
)
_envelope_keys = st.sampled_from(
    [
        *("error", "message", "code", "request_id", "requestId", "statusCode"),
        *("title", "detail", "type", "status", "instance"),
    ]
)
_envelopes = st.dictionaries(
    _envelope_keys, _json_values | st.dictionaries(_envelope_keys, _json_values)
)
_bodies = st.one_of(
    st.binary(),
    st.text(),
    st.none(),
    _json_values.map(json.dumps),
    _envelopes.map(json.dumps),
    _envelopes.map(lambda envelope: json.dumps(envelope).encode()),
)


def _assert_safe(parsed: ErrorInfo) -> None:
    for field, limit in (
        (parsed.error, 200),
        (parsed.code, 200),
        (parsed.request_id, 200),
        (parsed.message, MAX_ERROR_MESSAGE),
    ):
        if field is not None:
            assert 0 < len(field) <= limit
            assert field == field.strip()
            assert not any(char in field for char in "\r\n\x00\x1b\u2028\u2029\x85")
            field.encode("utf-8")


@settings(max_examples=300)
@given(status=st.integers(), headers=_headers, body=_bodies)
def test_parse_error_never_raises(status: int, headers: Any, body: Any) -> None:
    """Arbitrary statuses, headers and bodies never raise and give bounded one-line fields."""
    parsed = parse_error(status, headers, body)
    assert parsed.status == status
    _assert_safe(parsed)
    error = APIError.from_info(parsed)
    assert str(error).startswith(str(status))
    assert pickle.loads(pickle.dumps(error)).info == parsed
