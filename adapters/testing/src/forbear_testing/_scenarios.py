"""The conformance table: `Scenario`, `Expect` and `SCENARIOS`, as plain data.

Each scenario names one logical request, the server it meets (the fault server scripted with
`Reply` values, a refused port, or a raw socket that resets or never answers), the client
configuration the adapter must use, and what must happen: the final status or error kind, the
exact number of arrivals, token exchanges, elapsed time. The harness (`run_scenario`) reads
the same data to set the servers up and to check the outcome, and the suite's own tests send
each scenario's request once with a plain client to prove the server side says what it claims.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from enum import Enum

from forbear import Backoff, Jitter, Policy

from ._server import DEFAULT_REPLY, Reply

__all__ = [
    "FAST_POLICY",
    "SCENARIOS",
    "BodyKind",
    "Expect",
    "Scenario",
    "Target",
    "scenario_named",
]

#: The policy the table runs with: short exact back-off so it takes seconds, defaults otherwise.
FAST_POLICY = Policy(backoff=Backoff(initial=0.01, multiplier=2.0, max=0.05, jitter=Jitter.NONE))
#: The four waits `FAST_POLICY` sleeps between five attempts (0.01 + 0.02 + 0.04 + 0.05).
FIVE_ATTEMPTS = 0.12
_MiB = 2**20

#: The error kinds of a connection dropped after the request was sent (clients differ).
DROPPED: frozenset[str] = frozenset({"disconnect", "protocol"})


class Target(str, Enum):
    """What the scenario's request is sent to."""

    #: The `FaultServer`, scripted on the scenario's path.
    SERVER = "server"
    #: A port of 127.0.0.1 where nothing listens: the connection is refused.
    REFUSED = "refused"
    #: `RawFaults` in `RawMode.RESET_AFTER_REQUEST`: the request arrives, then a reset.
    RESET_AFTER_REQUEST = "reset-after-request"
    #: `RawFaults` in `RawMode.NEVER_ANSWER`: the request arrives, no answer ever comes.
    NEVER_ANSWER = "never-answer"


class BodyKind(str, Enum):
    """How the request body is handed to the client."""

    #: Plain bytes: replayable.
    BYTES = "bytes"
    #: A one-shot generator of chunks: not replayable, so it must be sent exactly once.
    GENERATOR = "generator"


@dataclass(frozen=True, slots=True)
class Expect:
    """What must happen. Exactly one of ``status``, ``error_kinds`` or ``cancelled`` is set."""

    #: How many requests reach the server (connections, for raw-socket targets).
    arrivals: int | range
    #: The final status every logical request returns.
    status: int | None = None
    #: The `forbear.ErrorKind` values accepted for the exception every request raises.
    error_kinds: frozenset[str] = frozenset()
    #: The final response body, when it matters (handed back intact).
    body: bytes | None = None
    #: Token exchanges made (the client starts with a stale token).
    exchanges: int = 0
    #: Every arrival carries the same non-empty ``Idempotency-Key``.
    same_idempotency_key: bool = False
    #: The logical request takes at least this long (the waits were slept).
    min_elapsed: float = 0.0
    #: ... and at most this long (given up at once).
    max_elapsed: float | None = None
    #: The request is cancelled during its back-off and ends promptly.
    cancelled: bool = False

    def __post_init__(self) -> None:
        chosen = [self.status is not None, bool(self.error_kinds), self.cancelled]
        if sum(chosen) != 1:
            raise ValueError("Expect takes exactly one of status, error_kinds or cancelled")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One row of the conformance table. ``str(scenario)`` is its name (a pytest id)."""

    #: A short unique slug.
    name: str
    #: One sentence: what the client must do.
    summary: str
    _: KW_ONLY
    expect: Expect
    method: str = "GET"
    #: Request headers the caller sets.
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    body_kind: BodyKind = BodyKind.BYTES
    target: Target = Target.SERVER
    #: Scripted replies for the first requests to the scenario's path (fault server).
    replies: tuple[Reply, ...] = ()
    #: The reply to every request once ``replies`` are used up.
    always: Reply | None = None
    #: The path requires a bearer token; the client gets a stale one and an exchange.
    token: bool = False
    #: The client's policy.
    policy: Policy = FAST_POLICY
    #: The adapter's opt-in ``Idempotency-Key`` generation is on.
    idempotency_keys: bool = False
    #: How many logical requests are sent at once through one client.
    concurrency: int = 1
    #: The client's connection pool size (None: the client's default).
    pool_size: int | None = None
    #: The client's connect and read timeout, in seconds.
    timeout: float = 5.0
    #: Cancel the logical request after this many seconds.
    cancel_after: float | None = None

    def __str__(self) -> str:
        return self.name

    @property
    def path(self) -> str:
        """The path this scenario's requests go to (unique per scenario)."""
        return f"/conformance/{self.name}"

    def chunks(self) -> tuple[bytes, ...]:
        """The body cut into the chunks a generator body yields (four, or fewer)."""
        body = self.body or b""
        size = max(1, -(-len(body) // 4))
        return tuple(body[i : i + size] for i in range(0, len(body), size))

    @property
    def first_answer(self) -> int | str:
        """What the first request meets: a status, or the error kind of a connection fault."""
        if self.target is Target.REFUSED:
            return "connect"
        if self.target is Target.RESET_AFTER_REQUEST:
            return "disconnect"
        if self.target is Target.NEVER_ANSWER:
            return "read_timeout"
        return self.first_reply.status if self.first_reply is not None else 401

    @property
    def first_reply(self) -> Reply | None:
        """The fault server's first reply (None: the 401 of a stale token)."""
        if self.replies:
            return self.replies[0]
        if self.always is not None:
            return self.always
        return None if self.token else DEFAULT_REPLY


_ORDER = b'{"symbol": "ACME", "quantity": 10}'
_OK = DEFAULT_REPLY.body

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "503-then-200",
        "A 503 is retried after the back-off and the 200 returned.",
        replies=(Reply(503),),
        expect=Expect(arrivals=2, status=200, body=_OK, min_elapsed=0.01),
    ),
    Scenario(
        "5xx-family-retried",
        "500, 502 and 504 are each retried until the 200.",
        replies=(Reply(500), Reply(502), Reply(504)),
        expect=Expect(arrivals=4, status=200, body=_OK, min_elapsed=0.07),
    ),
    Scenario(
        "429-retry-after-seconds",
        "A 429 with Retry-After: 1 is retried no earlier than one second later.",
        replies=(Reply(429, retry_after=1),),
        expect=Expect(arrivals=2, status=200, body=_OK, min_elapsed=1.0),
    ),
    Scenario(
        "429-retry-after-http-date",
        "A 429 with an HTTP-date Retry-After is retried no earlier than that date.",
        replies=(Reply(429, retry_after_date=0.5),),
        expect=Expect(arrivals=2, status=200, body=_OK, min_elapsed=0.45),
    ),
    Scenario(
        "retry-after-garbage-backs-off",
        "An unparsable Retry-After falls back to the back-off and is retried.",
        replies=(Reply(503, headers={"Retry-After": "soon"}),),
        expect=Expect(arrivals=2, status=200, body=_OK, max_elapsed=2.0),
    ),
    Scenario(
        "503-always-gives-up",
        "A server that always answers 503 sees five attempts; the last 503 is returned.",
        always=Reply(503, body=b"still down"),
        expect=Expect(arrivals=5, status=503, body=b"still down", min_elapsed=FIVE_ATTEMPTS),
    ),
    Scenario(
        "retry-after-too-long",
        "Retry-After: 99999999 is more than max_wait: the 429 is returned at once.",
        replies=(Reply(429, retry_after=99999999, body=b"come back much later"),),
        expect=Expect(arrivals=1, status=429, body=b"come back much later", max_elapsed=1.0),
    ),
    Scenario(
        "404-returned",
        "A 404 is returned at once, never retried.",
        replies=(Reply(404, body=b"no such thing"),),
        expect=Expect(arrivals=1, status=404, body=b"no such thing", max_elapsed=1.0),
    ),
    Scenario(
        "post-503-not-retried",
        "A POST answered 503 may have been acted on: it is returned, not retried.",
        method="POST",
        body=_ORDER,
        replies=(Reply(503, body=b"busy"),),
        expect=Expect(arrivals=1, status=503, body=b"busy"),
    ),
    Scenario(
        "post-503-idempotency-key-header",
        "A POST carrying the caller's Idempotency-Key is retried with that key every time.",
        method="POST",
        headers=(("Idempotency-Key", "conformance-key-1"),),
        body=_ORDER,
        replies=(Reply(503), Reply(503)),
        expect=Expect(arrivals=3, status=200, body=_OK, same_idempotency_key=True),
    ),
    Scenario(
        "post-503-idempotency-keys-on",
        "With idempotency keys on, a POST gets one key, sent on every retry.",
        method="POST",
        body=_ORDER,
        idempotency_keys=True,
        replies=(Reply(503),),
        expect=Expect(arrivals=2, status=200, body=_OK, same_idempotency_key=True),
    ),
    Scenario(
        "post-429-retried",
        "A POST answered 429 was refused unprocessed: it is retried.",
        method="POST",
        body=_ORDER,
        replies=(Reply(429),),
        expect=Expect(arrivals=2, status=200, body=_OK),
    ),
    Scenario(
        "post-refused-retried",
        "A refused connection never reached the server: even a POST is retried, five times.",
        method="POST",
        body=_ORDER,
        target=Target.REFUSED,
        expect=Expect(arrivals=0, error_kinds=frozenset({"connect"}), min_elapsed=FIVE_ATTEMPTS),
    ),
    Scenario(
        "post-reset-after-send-not-retried",
        "A POST whose connection is reset after sending may have been acted on: not retried.",
        method="POST",
        body=_ORDER,
        target=Target.RESET_AFTER_REQUEST,
        expect=Expect(arrivals=1, error_kinds=DROPPED),
    ),
    Scenario(
        "get-reset-after-send-retried",
        "A GET whose connection is reset after sending is retried, five attempts in all.",
        target=Target.RESET_AFTER_REQUEST,
        expect=Expect(arrivals=5, error_kinds=DROPPED, min_elapsed=FIVE_ATTEMPTS),
    ),
    Scenario(
        "get-read-timeout-retried",
        "A GET that meets a read timeout is retried, five attempts in all.",
        target=Target.NEVER_ANSWER,
        timeout=0.1,
        expect=Expect(arrivals=5, error_kinds=frozenset({"read_timeout"}), min_elapsed=0.5),
    ),
    Scenario(
        "post-read-timeout-not-retried",
        "A POST that meets a read timeout may have been acted on: not retried.",
        method="POST",
        body=_ORDER,
        target=Target.NEVER_ANSWER,
        timeout=0.1,
        expect=Expect(arrivals=1, error_kinds=frozenset({"read_timeout"})),
    ),
    Scenario(
        "401-reexchange",
        "A 401 on a stale token triggers one exchange, and the resend with the new token wins.",
        token=True,
        expect=Expect(arrivals=2, status=200, body=_OK, exchanges=1),
    ),
    Scenario(
        "401-twice-returned",
        "A second 401 after the re-exchange is returned: one exchange only.",
        token=True,
        replies=(Reply(401, body=b"denied"), Reply(401, body=b"denied again")),
        expect=Expect(arrivals=2, status=401, body=b"denied again", exchanges=1),
    ),
    Scenario(
        "401-concurrent-single-exchange",
        "A hundred concurrent 401s on the same stale token share one exchange.",
        token=True,
        concurrency=100,
        expect=Expect(arrivals=range(101, 201), status=200, body=_OK, exchanges=1),
    ),
    Scenario(
        "generator-body-sent-once",
        "A one-shot generator body is sent once; the 503 is handed back intact.",
        method="PUT",
        body=b"chunk-one|chunk-two|chunk-three|chunk-four",
        body_kind=BodyKind.GENERATOR,
        replies=(Reply(503, body=b"busy, and not retried"),),
        expect=Expect(arrivals=1, status=503, body=b"busy, and not retried"),
    ),
    Scenario(
        "large-error-bodies-pool-of-one",
        "Four 20 MB 503 bodies are released without draining, through a pool of one.",
        replies=tuple(Reply(503, body_size=20 * _MiB) for _ in range(4)),
        pool_size=1,
        expect=Expect(arrivals=5, status=200, body=_OK, max_elapsed=10.0),
    ),
    # Where forbear has no say, the client behaves as without it.
    Scenario(
        "401-without-token-returned",
        "A 401 to a client without a token source is returned at once, for the client's own auth.",
        replies=(
            Reply(401, headers={"WWW-Authenticate": 'Basic realm="api"'}, body=b"who are you"),
        ),
        expect=Expect(arrivals=1, status=401, body=b"who are you", max_elapsed=1.0),
    ),
    Scenario(
        "304-not-modified-returned",
        "A conditional GET answered 304 is returned at once, as the client's cache expects.",
        headers=(("If-None-Match", '"v1"'),),
        replies=(Reply(304, headers={"ETag": '"v1"'}),),
        expect=Expect(arrivals=1, status=304, body=b"", max_elapsed=1.0),
    ),
    Scenario(
        "large-200-body-intact",
        "A 1 MB final body is handed back unread and whole: only discarded answers are released.",
        replies=(Reply(503), Reply(200, body_size=_MiB)),
        expect=Expect(arrivals=2, status=200, body=b"x" * _MiB),
    ),
    Scenario(
        "head-503-then-200",
        "A HEAD answered 503 is retried like a GET; the 200 comes back without a body.",
        method="HEAD",
        replies=(Reply(503),),
        expect=Expect(arrivals=2, status=200, body=b"", max_elapsed=2.0),
    ),
    Scenario(
        "cancel-during-backoff",
        "Cancelling a request waiting out Retry-After: 30 ends it at once; nothing more arrives.",
        replies=(Reply(503, retry_after=30),),
        cancel_after=0.3,
        expect=Expect(arrivals=1, cancelled=True),
    ),
)


def scenario_named(name: str) -> Scenario:
    """The scenario called ``name``; KeyError when there is none."""
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    raise KeyError(name)
