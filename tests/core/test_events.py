"""Events and logs: one `Event` per decision, to the ``forbear`` logger and ``on_event``.

Retries log at INFO and every other decision at DEBUG. The canary test runs a full set of
requests with everything at DEBUG and sentinel secrets in every place a secret can hide, then
searches every log record, event, history, note and exception for them.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import traceback
import uuid

import pytest
from flowplay import Answer, Plain, Played, play

from forbear import (
    Action,
    ErrorKind,
    Event,
    Policy,
    Reason,
    Retrier,
    RetryBudget,
    TokenExchangeError,
    TokenSource,
    subscribe,
)
from forbear.flow import redact_url

SENTINEL = "SENTINEL"
STALE_TOKEN = "SENTINEL-bearer-stale-0001"
FRESH_TOKEN = "SENTINEL-bearer-fresh-0002"
API_KEY = "SENTINEL-apikey-0003"
COOKIE = "SENTINEL-cookie-0004"
QUERY_TOKEN = "SENTINEL-query-0005"
PASSWORD = "SENTINEL-password-0006"
FRAGMENT = "SENTINEL-fragment-0007"
API = "https://api.example.test"
SECRET_URL = f"https://alice:{PASSWORD}@api.example.test/v1/items?token={QUERY_TOKEN}#{FRAGMENT}"
CLEAN_URL = "https://api.example.test/v1/items"
SECRET_HEADERS = {
    "Authorization": f"Bearer {STALE_TOKEN}",
    "X-API-Key": API_KEY,
    "Cookie": f"session={COOKIE}",
}
#: What a server may send back: cookies and challenges that repeat credentials.
SECRET_RESPONSE = {
    "Set-Cookie": f"session={COOKIE}; HttpOnly",
    "WWW-Authenticate": f'Bearer error="invalid_token", token="{STALE_TOKEN}"',
    "X-Echo-Api-Key": API_KEY,
    "Location": SECRET_URL,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_retrier(events: list[Event], **options: object) -> Retrier:
    options.setdefault("gate", None)
    return Retrier(
        clock=Clock(),
        wall=lambda: 1_700_000_000.0,
        rng=random.Random(7),
        on_event=events.append,
        **options,  # type: ignore[arg-type]
    )


def run(
    retrier: Retrier,
    answers: list[Answer],
    method: str = "GET",
    url: str = CLEAN_URL,
    headers: dict[str, str] | None = None,
    **options: object,
) -> Played:
    """One logical request through ``retrier``'s flow, answered from ``answers``."""
    flow = retrier.flow(method, url, headers or {}, **options)  # type: ignore[arg-type]
    return play(flow, answers)


# -- redaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (SECRET_URL, CLEAN_URL),
        ("https://api.example.test", "https://api.example.test"),
        ("https://api.example.test?token=x", "https://api.example.test"),
        ("https://api.example.test/#frag", "https://api.example.test/"),
        ("https://user@api.example.test/", "https://api.example.test/"),
        ("https://a:b@c@api.example.test/x", "https://api.example.test/x"),
        ("http://api.example.test:8080/a/b;v=1?x=1", "http://api.example.test:8080/a/b;v=1"),
        ("https://api.example.test/users/@me?x=1", "https://api.example.test/users/@me"),
        ("/relative/path?key=1", "/relative/path"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    """Userinfo, query and fragment are dropped; scheme, host, port and path are kept."""
    assert redact_url(url) == redacted


# -- event fields --------------------------------------------------------------------------------


def test_events_carry_each_decision() -> None:
    """Each decision gives one event with attempt, action, wait, reason, status or error kind."""
    events: list[Event] = []
    played = run(
        make_retrier(events, request_ids=True),
        [(503, {"Retry-After": "2", "X-Request-Id": "srv-1"}), ErrorKind.CONNECT, 200],
        "get",
        SECRET_URL,
    )
    sent_id = played.sends[0]["X-Request-Id"]  # type: ignore[index]
    first, second, third = events
    assert first == Event(
        attempt=1,
        action=Action.RETRY,
        wait=played.sleeps[0],
        reason=Reason.RETRY_AFTER,
        status=503,
        error=None,
        method="GET",
        url=CLEAN_URL,
        request_id="srv-1",
    )
    assert 2.0 <= first.wait <= 2.2
    assert (second.attempt, second.action, second.reason) == (2, Action.RETRY, "backoff")
    assert (second.status, second.error) == (None, ErrorKind.CONNECT)
    assert second.wait == played.sleeps[1]
    assert second.request_id == sent_id
    assert (third.attempt, third.action, third.reason, third.status) == (
        3,
        Action.RETURN,
        "success",
        200,
    )


def test_subscribers_see_every_event_of_every_retrier() -> None:
    """``forbear.subscribe`` receives each event of every retrier until it unsubscribes."""
    seen: list[Event] = []
    unsubscribe = subscribe(seen.append)
    try:
        run(make_retrier([]), [503, 200])
        run(Retrier(gate=None), [200])
    finally:
        unsubscribe()
    assert [(event.attempt, event.action) for event in seen] == [
        (1, Action.RETRY),
        (2, Action.RETURN),
        (1, Action.RETURN),
    ]
    run(make_retrier([]), [200])
    assert len(seen) == 3


def test_event_is_frozen() -> None:
    """An event cannot be changed after it is emitted."""
    events: list[Event] = []
    run(make_retrier(events), [200])
    with pytest.raises(dataclasses.FrozenInstanceError):
        events[0].url = SECRET_URL  # type: ignore[misc]


def test_event_message() -> None:
    """The log line names method, clean URL, attempt, status, action, reason, wait and id."""
    event = Event(1, Action.RETRY, 2.05, "retry-after", 503, None, "GET", CLEAN_URL, "srv-1")
    assert event.message() == (
        f"GET {CLEAN_URL} #1 503: retry (retry-after), waiting 2.050s [request_id srv-1]"
    )
    error = Event(
        2, Action.GIVE_UP, 0.0, "attempts-exhausted", None, ErrorKind.READ_TIMEOUT, "PUT",
        CLEAN_URL, None,
    )  # fmt: skip
    assert error.message() == f"PUT {CLEAN_URL} #2 read_timeout: give-up (attempts-exhausted)"


@pytest.mark.parametrize(
    "echoed",
    ["has space", "x" * 129, "line\nbreak", "", "ümlaut", "a/b"],
)
def test_malformed_server_request_id_is_not_copied(echoed: str) -> None:
    """A server request id outside ``[A-Za-z0-9._:-]{1,128}`` is ignored for the one sent."""
    events: list[Event] = []
    played = run(make_retrier(events, request_ids=True), [(200, {"X-Request-Id": echoed})])
    assert events[0].request_id == played.sends[0]["X-Request-Id"]  # type: ignore[index]


def test_request_id_is_none_when_neither_side_sent_one() -> None:
    """Without request ids on either side the event's request id is None."""
    events: list[Event] = []
    run(make_retrier(events), [200])
    assert events[0].request_id is None


def test_caller_request_id_is_reported() -> None:
    """A request id the caller set is the one reported when the server echoes none."""
    events: list[Event] = []
    played = run(
        make_retrier(events, request_ids=True), [200], headers={"x-request-id": "caller-7"}
    )
    assert events[0].request_id == "caller-7"
    assert played.sends == [None]


# -- log levels ----------------------------------------------------------------------------------


def run_one_of_each(retrier: Retrier) -> None:
    """A REAUTH, a RETRY, a RETURN and a GIVE_UP."""
    run(retrier, [401, (503, {"Retry-After": "0"}), 200], url=f"{API}/x")
    run(retrier, [500], url=f"{API}/y", override={"policy": Policy(max_attempts=1)})


def test_retries_log_at_info_everything_else_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """RETRY is logged at INFO; RETURN, REAUTH and GIVE_UP at DEBUG, all on ``forbear``."""
    caplog.set_level(logging.DEBUG, logger="forbear")
    retrier = Retrier(token=TokenSource(lambda: "t1", origins=[API], token="t0"), gate=None)
    run_one_of_each(retrier)
    seen = [(r.name, r.levelno, r.forbear_event.action) for r in caplog.records]  # type: ignore[attr-defined]
    assert seen == [
        ("forbear", logging.DEBUG, Action.REAUTH),
        ("forbear", logging.INFO, Action.RETRY),
        ("forbear", logging.DEBUG, Action.RETURN),
        ("forbear", logging.DEBUG, Action.GIVE_UP),
    ]
    for record in caplog.records:
        assert record.getMessage() == record.forbear_event.message()  # type: ignore[attr-defined]


def test_a_success_is_logged_once_the_level_is_lowered(caplog: pytest.LogCaptureFixture) -> None:
    """The runners' first send reads the logger's cached "no" for DEBUG; lowering the level
    later (logging empties that cache) makes the next success log at once."""
    retrier = Retrier(gate=None, budget=None)
    caplog.set_level(logging.INFO, logger="forbear")
    assert retrier.run_sync(Plain(), None, "GET", f"{API}/a", {}) == "response"
    assert retrier.run_sync(Plain(), None, "GET", f"{API}/a", {}) == "response"
    assert caplog.records == []
    caplog.set_level(logging.DEBUG, logger="forbear")
    assert retrier.run_sync(Plain(), None, "GET", f"{API}/b", {}) == "response"
    assert [(r.levelno, r.forbear_event.action) for r in caplog.records] == [  # type: ignore[attr-defined]
        (logging.DEBUG, Action.RETURN)
    ]


def test_at_info_only_retries_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """With the logger at INFO the log holds the retries and nothing else."""
    caplog.set_level(logging.INFO, logger="forbear")
    run_one_of_each(Retrier(token=TokenSource(lambda: "t1", origins=[API], token="t0"), gate=None))
    assert [record.levelno for record in caplog.records] == [logging.INFO]


def test_hook_gets_every_event_whatever_the_log_level(caplog: pytest.LogCaptureFixture) -> None:
    """``on_event`` sees every decision even when the logger is silent."""
    caplog.set_level(logging.WARNING, logger="forbear")
    events: list[Event] = []
    run_one_of_each(
        make_retrier(events, token=TokenSource(lambda: "t1", origins=[API], token="t0"))
    )
    assert [event.action for event in events] == [
        Action.REAUTH,
        Action.RETRY,
        Action.RETURN,
        Action.GIVE_UP,
    ]
    assert caplog.records == []


# -- the canary --------------------------------------------------------------------------------


def test_no_secret_reaches_logs_events_notes_or_exceptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With everything at DEBUG, no token, API key, cookie, query token or password leaks."""
    caplog.set_level(logging.DEBUG)
    events: list[Event] = []
    exchanges = iter([FRESH_TOKEN, FRESH_TOKEN.replace("0002", "0008")])
    source = TokenSource(lambda: next(exchanges), origins=[API], token=STALE_TOKEN)
    retrier = make_retrier(
        events, token=source, idempotency_keys=True, request_ids=True, policy=Policy()
    )
    played: list[Played] = []
    errors: list[BaseException] = []

    # A POST through every kind of decision: re-exchange, server wait, transport error, 429.
    post = run(
        retrier,
        [
            (401, SECRET_RESPONSE),
            (503, {"Retry-After": "1", **SECRET_RESPONSE}),
            ErrorKind.READ_TIMEOUT,
            (429, {"Retry-After": "30", **SECRET_RESPONSE}),
            (200, SECRET_RESPONSE),
        ],
        "POST",
        SECRET_URL,
        SECRET_HEADERS,
    )
    played.append(post)
    assert post.sends[0]["Authorization"] == f"Bearer {STALE_TOKEN}"  # type: ignore[index]
    assert post.sends[1]["Authorization"] == f"Bearer {FRESH_TOKEN}"  # type: ignore[index]

    # A GET that runs out of attempts, one refused twice, one the budget stops.
    played.append(run(retrier, [(500, SECRET_RESPONSE)] * 5, "GET", SECRET_URL, SECRET_HEADERS))
    played.append(run(retrier, [(401, SECRET_RESPONSE)] * 2, "GET", SECRET_URL, SECRET_HEADERS))
    broke = make_retrier(events, budget=RetryBudget(ratio=0.0, min_per_second=0.0))
    spent = run(broke, [ErrorKind.DISCONNECT], "PUT", SECRET_URL, SECRET_HEADERS)
    played.append(spent)
    assert isinstance(spent.result, ConnectionError)
    errors.append(spent.result)

    # An exchange that fails with the secrets in its own message.
    def leaky_exchange() -> str:
        raise RuntimeError(f"refresh of {STALE_TOKEN} for {PASSWORD} refused: {FRESH_TOKEN}")

    failing = make_retrier(
        events, token=TokenSource(leaky_exchange, origins=[API], token=STALE_TOKEN)
    )
    with pytest.raises(TokenExchangeError) as refused:
        run(failing, [(401, SECRET_RESPONSE)], "PATCH", SECRET_URL, SECRET_HEADERS)
    errors.append(refused.value)

    texts: list[str] = []
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), str(record.msg), repr(vars(record))]
    for event in events:
        texts += [repr(event), event.message(), *map(str, dataclasses.astuple(event))]
    for one in played:
        # The sends carry the token to the client: that is their job; nothing else may.
        texts += [repr(one.result), repr(one.sleeps), repr(one.released)]
    for retrier_ in (retrier, broke, failing):
        texts += [repr(retrier_), repr(retrier_.token), repr(retrier_.gate), repr(retrier_.budget)]
    for raised in errors:
        texts += [str(raised), repr(raised), "".join(traceback.format_exception(raised))]

    # The run was not vacuous: every decision was logged and seen, with the URL cleaned.
    decisions = len(events)
    assert decisions == 14
    assert len([r for r in caplog.records if r.name == "forbear"]) == decisions
    assert {r.levelno for r in caplog.records if r.name == "forbear"} == {
        logging.DEBUG,
        logging.INFO,
    }
    assert {event.url for event in events} == {CLEAN_URL}
    leaks = [text for text in texts if SENTINEL in text]
    assert leaks == []


def test_idempotency_key_and_request_id_are_uuids_not_secrets() -> None:
    """The headers forbear adds are fresh UUIDs, never derived from the caller's headers."""
    events: list[Event] = []
    played = run(
        make_retrier(events, idempotency_keys=True, request_ids=True),
        [200],
        "POST",
        SECRET_URL,
        SECRET_HEADERS,
    )
    added = played.sends[0]
    assert added is not None
    assert set(added) == {"Idempotency-Key", "X-Request-Id"}
    for value in added.values():
        assert str(uuid.UUID(value)) == value
