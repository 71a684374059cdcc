"""`TokenSource`: which requests carry the token, and single-flight re-exchange.

Concurrent 401s carrying the same stale token share one exchange: from threads, and from anyio
tasks on asyncio and on trio. A failing or hung exchange fails every waiter with one
`TokenExchangeError` that holds no secret, and the next request may exchange again. The
exchanges below hold still on events, so the only real waits are the 0.2 s timeouts under test.
"""

from __future__ import annotations

import functools
import pickle
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator

import anyio
import pytest

from forbear import Call, Outcome, Retrier, TokenExchangeError, TokenSource
from forbear.flow import Replayable, Send

API = "https://api.example.test"
SECRET = "SENTINEL-exchange-secret-4711"
THREADS = 100
TASKS = 100


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Exchange:
    """A sync exchange that counts its calls, optionally holds until released, then answers.

    Call number n answers ``tokens[n - 1]``, whatever order held calls finish in.
    """

    def __init__(self, *tokens: str, fail: bool = False) -> None:
        self.tokens = list(tokens)
        self.fail = fail
        self.calls = 0
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()

    def hold(self) -> None:
        self.release.clear()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
            answer = self.tokens[self.calls - 1] if self.calls <= len(self.tokens) else "spare"
        self.release.wait(timeout=5.0)
        if self.fail:
            raise ValueError(f"the identity provider said no to {SECRET}")
        return answer


class AsyncExchange:
    """The async twin of `Exchange`; holds on an `anyio.Event` or sleeps ``delay``."""

    def __init__(self, *tokens: str, fail: bool = False, delay: float = 0.0) -> None:
        self.tokens = list(tokens)
        self.fail = fail
        self.delay = delay
        self.calls = 0
        self.release: anyio.Event | None = None

    async def __call__(self) -> str:
        self.calls += 1
        answer = self.tokens[self.calls - 1] if self.calls <= len(self.tokens) else "spare"
        if self.release is not None:
            await self.release.wait()
        if self.delay:
            await anyio.sleep(self.delay)
        if self.fail:
            raise ValueError(f"the identity provider said no to {SECRET}")
        return answer


def in_threads(
    count: int, work: Callable[[], str], held: Exchange | None = None
) -> list[str | BaseException]:
    """Run ``work`` in ``count`` threads released together; each thread's result or error.

    A ``held`` exchange is released only once every thread has called ``work`` and had time
    to reach the lock, so no thread arrives after the exchange is over.
    """
    results: list[str | BaseException] = []
    barrier = threading.Barrier(count)
    lock = threading.Lock()
    entered = threading.Semaphore(0)

    def run() -> None:
        barrier.wait()
        entered.release()
        try:
            outcome: str | BaseException = work()
        except BaseException as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    def release_when_all_entered() -> None:
        assert held is not None
        for _ in range(count):
            entered.acquire(timeout=10.0)
        time.sleep(0.05)  # from entering to waiting on the lock is a few bytecodes
        held.release.set()

    threads = [threading.Thread(target=run) for _ in range(count)]
    if held is not None:
        threads.append(threading.Thread(target=release_when_all_entered))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10.0)
    return results


@pytest.fixture
def held() -> Iterator[list[Exchange]]:
    """Exchanges registered here are released at teardown, so no helper thread lingers."""
    exchanges: list[Exchange] = []
    yield exchanges
    for exchange in exchanges:
        exchange.release.set()


# -- configuration and which requests carry the token ------------------------------------------


@pytest.mark.parametrize(
    ("url", "applies"),
    [
        (f"{API}/v1/items", True),
        ("https://API.EXAMPLE.TEST/other?x=1", True),
        ("https://user:pw@api.example.test/x", True),
        ("http://api.example.test/v1/items", False),
        ("https://api.example.test:8443/v1", False),
        ("https://evil.test/?next=https://api.example.test", False),
        ("https://api.example.test.evil.test/", False),
        ("https://api.example.test@evil.test/", False),
    ],
)
def test_token_attaches_only_to_listed_origins(url: str, applies: bool) -> None:
    """Only a request to a listed origin (scheme, host and port) carries the token."""
    source = TokenSource(Exchange("t1"), origins=[f"{API}/ignored/path"])
    assert source.applies_to(url) is applies


def test_one_origin_may_be_given_as_a_string() -> None:
    """A single origin string is one origin, not a list of characters."""
    source = TokenSource(Exchange("t1"), origins=API)
    assert source.origins == frozenset({API})


@pytest.mark.parametrize(
    ("options", "message"),
    [({"origins": []}, "origins"), ({"origins": [API], "timeout": 0.0}, "timeout")],
)
def test_bad_configuration_raises(options: dict[str, object], message: str) -> None:
    """No origins or a non-positive timeout is a configuration error."""
    with pytest.raises(ValueError, match=message):
        TokenSource(Exchange("t1"), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "scheme", "value"),
    [("Authorization", "Bearer", "Bearer tok"), ("X-API-Key", "", "tok")],
)
def test_header_value(header: str, scheme: str, value: str) -> None:
    """The header carries ``scheme token``, or the bare token when the scheme is empty."""
    source = TokenSource(Exchange("t1"), origins=[API], header=header, scheme=scheme)
    assert source.header == header
    assert source.header_value("tok") == value


def test_token_never_in_repr_or_str() -> None:
    """Neither repr nor str of a source shows its token."""
    source = TokenSource(Exchange(), origins=[API], token=SECRET)
    assert source.get_sync() == SECRET
    for text in (repr(source), str(source)):
        assert SECRET not in text
        assert "token=set" in text


def drive(retrier: Retrier, url: str, statuses: list[int]) -> tuple[list[object], object]:
    """Run one request's flow, answering its sends with ``statuses``; the headers sent, result."""
    flow = retrier.flow("GET", url, {})
    answers = iter(statuses)
    sent: list[object] = []
    value: object = None
    while True:
        try:
            effect = flow.send(value)
        except StopIteration as stop:
            return sent, stop.value
        if isinstance(effect, Call):
            value = effect.sync(*effect.args)
        elif isinstance(effect, Send):
            sent.append(effect.headers)
            status = next(answers)
            value = (status, None, Outcome.response(status))
        else:
            value = isinstance(effect, Replayable) or None


async def drive_async(retrier: Retrier, url: str, statuses: list[int]) -> list[object]:
    """`drive` for the async runner's side of the flow; the headers sent."""
    flow = retrier.flow("GET", url, {})
    answers = iter(statuses)
    sent: list[object] = []
    value: object = None
    while True:
        try:
            effect = flow.send(value)
        except StopIteration:
            return sent
        if isinstance(effect, Call):
            value = await effect.asynchronous(*effect.args)
        elif isinstance(effect, Send):
            sent.append(effect.headers)
            status = next(answers)
            value = (status, None, Outcome.response(status))
        else:
            value = isinstance(effect, Replayable) or None


def test_401_from_another_origin_triggers_nothing() -> None:
    """A 401 from an unlisted origin is handed back: no token sent, no exchange made."""
    exchange = Exchange("t1")
    retrier = Retrier(
        token=TokenSource(exchange, origins=[API], token="t0"), gate=None, budget=None
    )
    sent, result = drive(retrier, "https://elsewhere.test/v1/items", [401])
    assert sent == [None]
    assert result == 401
    assert exchange.calls == 0


def test_401_from_a_listed_origin_exchanges_once() -> None:
    """A 401 from a listed origin re-exchanges the token that was sent, once."""
    exchange = Exchange("t1")
    retrier = Retrier(
        token=TokenSource(exchange, origins=[API], token="t0"), gate=None, budget=None
    )
    sent, result = drive(retrier, f"{API}/v1/items", [401, 401])
    assert sent == [{"Authorization": "Bearer t0"}, {"Authorization": "Bearer t1"}]
    assert result == 401  # the second refusal is handed back: one re-exchange per request
    assert exchange.calls == 1


# -- threads ------------------------------------------------------------------------------------


def test_concurrent_401s_in_threads_share_one_exchange(held: list[Exchange]) -> None:
    """100 threads refused with the same stale token make exactly one exchange call."""
    exchange = Exchange("t1", "t2")
    held.append(exchange)
    exchange.hold()
    source = TokenSource(exchange, origins=[API], token="t0")
    results = in_threads(THREADS, lambda: source.refresh_sync("t0"), held=exchange)
    assert results == ["t1"] * THREADS
    assert exchange.calls == 1
    assert source.exchanges == 1
    assert source.get_sync() == "t1"


def test_a_newer_token_is_returned_without_exchanging() -> None:
    """A refresh for a token already replaced returns the current one at once."""
    exchange = Exchange("t1", "t2")
    source = TokenSource(exchange, origins=[API], token="t0")
    assert source.refresh_sync("t0") == "t1"
    assert source.refresh_sync("t0") == "t1"
    assert exchange.calls == 1
    assert source.refresh_sync("t1") == "t2"
    assert exchange.calls == 2


def test_first_token_is_fetched_once_for_concurrent_threads(held: list[Exchange]) -> None:
    """With no token yet, 100 threads asking for one share the first exchange."""
    exchange = Exchange("t1", "t2")
    held.append(exchange)
    exchange.hold()
    source = TokenSource(exchange, origins=[API])
    results = in_threads(THREADS, source.get_sync, held=exchange)
    assert results == ["t1"] * THREADS
    assert exchange.calls == 1


def assert_secret_free(error: BaseException) -> None:
    assert isinstance(error, TokenExchangeError)
    rendered = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), rendered):
        assert SECRET not in text
    assert "t0" not in str(error)
    assert "t0" not in repr(error)
    assert error.__cause__ is None
    assert error.__context__ is None or SECRET not in repr(error.__context__)


def test_failing_exchange_fails_every_thread_then_recovers(held: list[Exchange]) -> None:
    """A raising exchange fails all 100 waiters with one typed error; the next call exchanges."""
    exchange = Exchange("never", "t1", fail=True)
    held.append(exchange)
    exchange.hold()
    source = TokenSource(exchange, origins=[API], token="t0")
    results = in_threads(THREADS, lambda: source.refresh_sync("t0"), held=exchange)
    assert len(results) == THREADS
    for error in results:
        assert isinstance(error, TokenExchangeError)
        assert str(error) == "token exchange failed: ValueError"
        assert_secret_free(error)
    assert exchange.calls == 1
    exchange.fail = False
    assert source.refresh_sync("t0") == "t1"
    assert exchange.calls == 2


def test_the_exchanging_thread_keeps_the_original_for_debugging() -> None:
    """The first caller's error keeps the original exception on ``original``, unchained."""
    source = TokenSource(Exchange(fail=True), origins=[API], token="t0")
    with pytest.raises(TokenExchangeError) as caught:
        source.refresh_sync("t0")
    assert isinstance(caught.value.original, ValueError)
    assert_secret_free(caught.value)


def test_hung_exchange_times_out_for_every_thread_then_recovers(held: list[Exchange]) -> None:
    """An exchange past its 0.2 s timeout fails all waiters promptly; the lock is usable after."""
    exchange = Exchange("late", "t2")
    held.append(exchange)
    exchange.hold()  # never released until the test says so
    source = TokenSource(exchange, origins=[API], token="t0", timeout=0.2)
    started = time.monotonic()
    results = in_threads(20, lambda: source.refresh_sync("t0"))
    assert time.monotonic() - started < 2.0
    assert len(results) == 20
    for error in results:
        assert isinstance(error, TokenExchangeError)
        assert_secret_free(error)
    assert any(str(error) == "token exchange took longer than 0.2s" for error in results)
    assert exchange.calls == 1
    exchange.release.set()  # the hung call finally answers "late": nobody is listening
    assert source.refresh_sync("t0") == "t2"
    assert source.get_sync() == "t2"
    assert exchange.calls == 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (42, "token exchange failed: TypeError"),
        ("", "token exchange returned str, not a token string"),
    ],
)
def test_exchange_returning_no_token_is_an_error(answer: object, message: str) -> None:
    """An exchange that returns a non-string or an empty string fails with a typed error."""
    source = TokenSource(lambda: answer, origins=[API])  # type: ignore[arg-type, return-value]
    with pytest.raises(TokenExchangeError, match=message):
        source.get_sync()


def test_async_exchange_from_sync_code() -> None:
    """The sync API runs an async exchange to completion."""
    exchange = AsyncExchange("t1")
    source = TokenSource(exchange, origins=[API], token="t0")
    assert source.refresh_sync("t0") == "t1"
    assert exchange.calls == 1


def test_async_exchange_from_sync_code_is_bounded_by_the_timeout() -> None:
    """A hung async exchange run from sync code fails at its timeout instead of hanging."""
    source = TokenSource(AsyncExchange("t1", delay=10.0), origins=[API], timeout=0.2)
    started = time.monotonic()
    with pytest.raises(TokenExchangeError, match=r"took longer than 0\.2s"):
        source.get_sync()
    assert time.monotonic() - started < 2.0


class AwaitableFactory:
    """Not ``async def``: a plain call that returns a coroutine, which answers ``tokens[n-1]``.

    The coroutine records the thread it runs on and checkpoints, so it needs a running loop.
    """

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.calls = 0
        self.ran_on: list[int] = []

    def __call__(self) -> Awaitable[str]:
        self.calls += 1
        answer = self.tokens[self.calls - 1] if self.calls <= len(self.tokens) else "spare"
        return self._answer(answer)

    async def _answer(self, answer: str) -> str:
        await anyio.sleep(0)
        self.ran_on.append(threading.get_ident())
        return answer


def call_it(factory: AwaitableFactory) -> Awaitable[str]:
    return factory()


AWAITABLE_EXCHANGES: dict[str, Callable[[AwaitableFactory], Callable[[], Awaitable[str]]]] = {
    "object": lambda factory: factory,
    "lambda": lambda factory: lambda: factory(),
    "partial": lambda factory: functools.partial(call_it, factory),
}


@pytest.mark.parametrize("kind", sorted(AWAITABLE_EXCHANGES))
def test_exchange_returning_an_awaitable_from_sync_code(kind: str) -> None:
    """A plain callable that returns a coroutine is run to its token from sync code."""
    factory = AwaitableFactory("t1", "t2")
    source = TokenSource(AWAITABLE_EXCHANGES[kind](factory), origins=[API], token="t0")
    assert source.refresh_sync("t0") == "t1"
    assert source.refresh_sync("t1") == "t2"
    assert factory.calls == 2


@pytest.mark.anyio
@pytest.mark.parametrize("kind", sorted(AWAITABLE_EXCHANGES))
async def test_exchange_returning_an_awaitable_is_awaited_on_the_callers_loop(kind: str) -> None:
    """From async code, the awaitable a plain callable returns is awaited on the caller's loop."""
    factory = AwaitableFactory("t1", "t2")
    source = TokenSource(AWAITABLE_EXCHANGES[kind](factory), origins=[API], token="t0")
    results = await in_tasks(TASKS, lambda: source.refresh_async("t0"))
    assert results == ["t1"] * TASKS
    assert factory.calls == 1
    assert factory.ran_on == [threading.get_ident()]


def test_exchange_error_survives_pickling_without_the_original() -> None:
    """The error pickles (for process pools) with its message and without the original."""
    error = TokenExchangeError("token exchange failed: ValueError", original=ValueError(SECRET))
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, TokenExchangeError)
    assert str(copy) == "token exchange failed: ValueError"
    assert copy.original is None


# -- anyio tasks, on asyncio and trio -----------------------------------------------------------


async def in_tasks(count: int, work: Callable[[], object]) -> list[object]:
    """Run the coroutine function ``work`` in ``count`` tasks; each task's result or error."""
    results: list[object] = []

    async def run() -> None:
        try:
            results.append(await work())  # type: ignore[misc]
        except Exception as exc:
            results.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(run)
    return results


@pytest.mark.anyio
async def test_concurrent_401s_in_tasks_share_one_async_exchange() -> None:
    """100 tasks refused with the same stale token make exactly one async exchange call."""
    exchange = AsyncExchange("t1", "t2")
    exchange.release = anyio.Event()
    source = TokenSource(exchange, origins=[API], token="t0")

    async def release_when_all_wait() -> None:
        await anyio.wait_all_tasks_blocked()
        assert exchange.release is not None
        exchange.release.set()

    async with anyio.create_task_group() as group:
        group.start_soon(release_when_all_wait)
        results = await in_tasks(TASKS, lambda: source.refresh_async("t0"))
    assert results == ["t1"] * TASKS
    assert exchange.calls == 1


@pytest.mark.anyio
async def test_concurrent_401s_in_tasks_share_one_sync_exchange(held: list[Exchange]) -> None:
    """A sync exchange, run on a worker thread, is also called once for 100 tasks."""
    exchange = Exchange("t1", "t2")
    held.append(exchange)
    exchange.hold()
    source = TokenSource(exchange, origins=[API], token="t0")
    timer = threading.Timer(0.1, exchange.release.set)
    timer.start()
    results = await in_tasks(TASKS, lambda: source.refresh_async("t0"))
    timer.join()
    assert results == ["t1"] * TASKS
    assert exchange.calls == 1


@pytest.mark.anyio
async def test_first_token_is_fetched_once_for_concurrent_tasks() -> None:
    """With no token yet, 100 tasks asking for one share the first exchange."""
    exchange = AsyncExchange("t1", "t2", delay=0.01)
    source = TokenSource(exchange, origins=[API])
    results = await in_tasks(TASKS, source.get_async)
    assert results == ["t1"] * TASKS
    assert exchange.calls == 1


@pytest.mark.anyio
async def test_failing_exchange_fails_every_task_then_recovers() -> None:
    """A raising exchange fails all 100 tasks with one typed error; the next call exchanges."""
    exchange = AsyncExchange("never", "t1", fail=True)
    exchange.release = anyio.Event()
    source = TokenSource(exchange, origins=[API], token="t0")

    async def release_when_all_wait() -> None:
        await anyio.wait_all_tasks_blocked()
        assert exchange.release is not None
        exchange.release.set()

    async with anyio.create_task_group() as group:
        group.start_soon(release_when_all_wait)
        results = await in_tasks(TASKS, lambda: source.refresh_async("t0"))
    assert len(results) == TASKS
    for error in results:
        assert isinstance(error, TokenExchangeError)
        assert str(error) == "token exchange failed: ValueError"
        assert_secret_free(error)
    assert exchange.calls == 1
    exchange.fail = False
    assert await source.refresh_async("t0") == "t1"
    assert exchange.calls == 2


@pytest.mark.anyio
async def test_hung_async_exchange_times_out_for_every_task_then_recovers() -> None:
    """An async exchange past its 0.2 s timeout fails all tasks promptly; the next one works."""
    exchange = AsyncExchange("late", "t1", delay=30.0)
    source = TokenSource(exchange, origins=[API], token="t0", timeout=0.2)
    started = time.monotonic()
    results = await in_tasks(20, lambda: source.refresh_async("t0"))
    assert time.monotonic() - started < 2.0
    assert len(results) == 20
    for error in results:
        assert isinstance(error, TokenExchangeError)
        assert_secret_free(error)
    assert any(str(error) == "token exchange took longer than 0.2s" for error in results)
    assert exchange.calls == 1
    exchange.delay = 0.0
    assert await source.refresh_async("t0") == "t1"
    assert exchange.calls == 2


@pytest.mark.anyio
async def test_hung_sync_exchange_times_out_for_tasks(held: list[Exchange]) -> None:
    """A hung sync exchange on its worker thread is abandoned at the timeout."""
    exchange = Exchange("late", "t2")
    held.append(exchange)
    exchange.hold()
    source = TokenSource(exchange, origins=[API], token="t0", timeout=0.2)
    started = time.monotonic()
    results = await in_tasks(10, lambda: source.refresh_async("t0"))
    assert time.monotonic() - started < 2.0
    assert all(isinstance(error, TokenExchangeError) for error in results)
    assert exchange.calls == 1
    exchange.release.set()
    assert await source.refresh_async("t0") == "t2"


@pytest.mark.anyio
async def test_async_flow_reauth_uses_the_token_sent() -> None:
    """The async side attaches the token and re-exchanges exactly the one that was sent."""
    exchange = AsyncExchange("t1")
    retrier = Retrier(
        token=TokenSource(exchange, origins=[API], token="t0"), gate=None, budget=None
    )
    sent = await drive_async(retrier, f"{API}/v1/items", [401, 200])
    assert sent == [{"Authorization": "Bearer t0"}, {"Authorization": "Bearer t1"}]
    assert await drive_async(retrier, "https://elsewhere.test/", [200]) == [None]
    assert exchange.calls == 1
