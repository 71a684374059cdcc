"""Secret canaries at DEBUG: no credential reaches a log line, an event, an exception or a history.

Every logger is captured at DEBUG while each adapter retries requests that carry canaries:
a bearer token from a `TokenSource`, an ``X-API-Key`` and a ``Cookie`` set by the caller, a
``Set-Cookie`` the server answers with, a password in the URL's userinfo, a key in its query,
and the message of a token exchange that fails. They meet retried 503s, a refused port, a reset
after sending, and a failed re-exchange after a 401.

The credentials the client sends, and the failed exchange's message, must appear nowhere: not
in any logger's records (forbear's, the clients', the server's), events, exception text or
chain, or attempt history. The URL's password and query and the server's cookie must not
appear in what forbear writes (its loggers, events, exception notes, `TokenExchangeError`):
the clients' own log lines and exception messages quote URLs with their query, and httpcore
logs response headers at DEBUG, which is theirs to do; forbear cannot change it.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable

import pytest
from forbear_testing import FaultServer, RawFaults, RawMode, Reply

from forbear import Backoff, Jitter, Policy, TokenExchangeError, TokenSource

from .conftest import Events
from .drivers import Answer, Driver, Options

POLICY = Policy(max_attempts=3, backoff=Backoff(initial=0.01, max=0.02, jitter=Jitter.NONE))

API_KEY = "canary-apikey-Wm27"
COOKIE = "canary-cookie-Rt54"
SET_COOKIE = "canary-setcookie-Hb90"
EXCHANGE = "canary-exchange-Lp36"
#: Credentials the client sends (with every token the exchange obtained) and the failing
#: exchange's message: never written anywhere, by anyone.
SENT_CANARIES = (API_KEY, COOKIE, EXCHANGE)
PASSWORD = "canary-password-Vx63"
QUERY = "canary-query-Nc12"
#: The URL's secrets and the server's cookie: never written by forbear. (httpx logs a URL with
#: its query at INFO, and httpcore the response headers at DEBUG: theirs to do.)
FORBEAR_CANARIES = (PASSWORD, QUERY, SET_COOKIE)

CALLER_HEADERS = {"X-API-Key": API_KEY, "Cookie": f"session={COOKIE}"}


def _with_userinfo(url: str, path: str) -> str:
    scheme, _, authority = url.partition("://")
    return f"{scheme}://user:{PASSWORD}@{authority}{path}?api_key={QUERY}&page=2"


class Exchange:
    """Obtains tokens from the fault server until the identity provider goes down."""

    def __init__(self, server: FaultServer) -> None:
        self.server = server
        self.down = False
        self.tokens: list[str] = []

    def __call__(self) -> str:
        if self.down:
            raise RuntimeError(f"identity provider refused secret {EXCHANGE}")
        self.tokens.append(self.server.issue_token())
        return self.tokens[-1]


def _exception_text(error: BaseException | None) -> str:
    """Everything an exception shows: type, message, chain, notes, repr."""
    if error is None:
        return ""
    return "".join(traceback.format_exception(error)) + repr(error)


def _forbear_notes(answer: Answer) -> str:
    return "\n".join(note for note in answer.notes if note.startswith("forbear"))


def _hits(canaries: Iterable[str], texts: Iterable[str]) -> list[tuple[str, str]]:
    return [(canary, text[:300]) for text in texts for canary in canaries if canary in text]


def test_no_secret_in_logs_events_exceptions_or_histories(
    driver: Driver,
    fault_server: FaultServer,
    raw_faults: RawFaults,
    refused_port: int,
    events: Events,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No credential or URL secret appears in logs, events, exceptions or attempt histories."""
    caplog.set_level(logging.DEBUG)
    set_cookie = {"Set-Cookie": f"sid={SET_COOKIE}; HttpOnly"}
    fault_server.script("/retried", [Reply(503, headers=set_cookie)] * 2)
    fault_server.always("/exhausted", Reply(503, headers=set_cookie))
    raw_faults.mode = RawMode.RESET_AFTER_REQUEST
    fault_server.require_token("/private")

    exchange = Exchange(fault_server)
    token = TokenSource(exchange, origins=[fault_server.url], timeout=0.5)
    options = Options(
        POLICY,
        token=token if driver.adds_headers else None,
        idempotency_keys=driver.adds_headers,
        request_ids=driver.adds_headers,
        on_event=events,
        timeout=2.0,
    )
    answers: list[Answer] = []
    with driver.open(options) as session:
        for url, method in [
            (_with_userinfo(fault_server.url, "/retried"), "GET"),
            (_with_userinfo(fault_server.url, "/exhausted"), "GET"),
            (_with_userinfo(f"http://127.0.0.1:{refused_port}", "/refused"), "GET"),
            (_with_userinfo(raw_faults.url, "/reset"), "POST"),
        ]:
            answers.append(session.send(method, url, headers=CALLER_HEADERS, body=b"{}"))
        if driver.adds_headers:
            assert session.send("GET", fault_server.url + "/private").status == 200
            fault_server.expire_tokens()
            exchange.down = True
            answers.append(session.send("GET", fault_server.url + "/private"))

    statuses = [answer.status for answer in answers]
    assert statuses[:4] == [200, 503, None, None]
    assert answers[2].kind == "connect"
    assert answers[3].kind in {"disconnect", "protocol"}
    assert len(fault_server.arrivals("/retried")) == 3
    assert len(fault_server.arrivals("/exhausted")) == 3
    # The POST is retried only with the key forbear injects (the backoff driver cannot).
    assert len(raw_faults.arrivals()) == (3 if driver.adds_headers else 1)
    if driver.adds_headers:
        assert isinstance(answers[4].error, TokenExchangeError)
        # What reached the server did carry the credentials: the canaries were live.
        [token_sent] = exchange.tokens
        assert token_sent in (fault_server.arrivals("/private")[0].header("authorization") or "")
    assert API_KEY in (fault_server.arrivals("/retried")[0].header("x-api-key") or "")
    assert len(events.events) >= 8

    records = [repr(vars(record)) + record.getMessage() for record in caplog.records]
    forbear_records = [
        repr(vars(record)) + record.getMessage()
        for record in caplog.records
        if record.name.startswith("forbear")
    ]
    assert forbear_records, "forbear logged nothing at DEBUG"
    event_texts = [repr(event) + event.message() for event in events.events]
    exception_texts = [_exception_text(answer.error) for answer in answers]
    forbear_texts = [_forbear_notes(answer) for answer in answers] + [
        _exception_text(answer.error)
        for answer in answers
        if isinstance(answer.error, TokenExchangeError)
    ]

    sent_canaries = (*SENT_CANARIES, *exchange.tokens)
    assert _hits(sent_canaries, records + event_texts + exception_texts + forbear_texts) == []
    assert _hits(FORBEAR_CANARIES, forbear_records + event_texts + forbear_texts) == []
