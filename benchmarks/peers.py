"""Every client the scenarios compare, configured in one place: forbear's adapters and the peers.

The peers are benchmark-only dependencies (the ``bench`` dependency group); a peer that is not
importable is skipped and reported as skipped. Each is configured the way its own docs show
for "retry 429 and 5xx, honour Retry-After, at most 5 attempts" (`CONFIGURED` says how, in
words, for the tables and the README):

- urllib3 ``Retry`` through ``requests``' ``HTTPAdapter(max_retries=...)``;
- httpx-retries ``RetryTransport(retry=Retry(...))``;
- aiohttp-retry ``RetryClient`` with an ``ExponentialRetry`` whose ``get_timeout`` reads
  Retry-After (its README's way: the response is passed to ``get_timeout``);
- tenacity, backoff and stamina decorating a plain ``httpx.AsyncClient.get`` call.

`Setup` carries what a scenario changes: a fast backoff for the outage (every library alike),
forbear's `RetryBudget` on or off, and a stale bearer token. `Candidate.open` gives a fetch
function, ``url -> final status``, inside an (async) context manager that owns the client.

forbear's adapters share the process's `HostGate` and `RetryBudget` unless given their own
(`forbear.process_gate()`, `forbear.process_budget()`). Here every forbear candidate gets a
fresh pair each time it is opened (`forbear_scope`): a rate one candidate's gate learned, or
a budget it spent, never carries over to the next candidate or the next repeat.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from forbear import Backoff, HostGate, Policy, RetryBudget, TokenSource

#: What every library is asked to retry.
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: Logical attempts, the first included.
ATTEMPTS = 5
#: Client-side timeouts; generous, since Retry-After waits run inside some of them.
TIMEOUT = 60.0
#: Connections a client may open (more than any scenario's concurrency).
CONNECTIONS = 100

#: The fast backoff of the outage scenario, for every library alike: 10 ms doubling, capped
#: at 80 ms (so five attempts take at most 10 + 20 + 40 + 80 ms of waiting).
FAST_INITIAL = 0.01
FAST_MAX = 0.08

AsyncFetch = Callable[[str], Awaitable[int]]
SyncFetch = Callable[[str], int]

#: Distribution names, for availability and versions.
DISTRIBUTIONS = {
    "forbear": "forbear",
    "httpx": "httpx",
    "requests": "requests",
    "aiohttp": "aiohttp",
    "urllib3": "urllib3",
    "httpx-retries": "httpx-retries",
    "aiohttp-retry": "aiohttp-retry",
    "tenacity": "tenacity",
    "backoff": "backoff",
    "stamina": "stamina",
    "forbear-backoff": "forbear-backoff",
    "forbear-tenacity": "forbear-tenacity",
}
_MODULES = {
    "forbear": "forbear",
    "httpx": "httpx",
    "requests": "requests",
    "aiohttp": "aiohttp",
    "urllib3": "urllib3",
    "httpx-retries": "httpx_retries",
    "aiohttp-retry": "aiohttp_retry",
    "tenacity": "tenacity",
    "backoff": "backoff",
    "stamina": "stamina",
    "forbear-backoff": "forbear_backoff",
    "forbear-tenacity": "forbear_tenacity",
}

#: How each peer is configured, in words (the README and the Markdown table repeat it).
CONFIGURED = {
    "urllib3": (
        "`HTTPAdapter(max_retries=Retry(total=4, backoff_factor=0.5, "
        "status_forcelist=(429, 500, 502, 503, 504), raise_on_status=False))` mounted on a "
        "`requests.Session`; `respect_retry_after_header=True` is the default (honoured for "
        "413, 429 and 503)"
    ),
    "httpx-retries": (
        "`httpx.AsyncClient(transport=RetryTransport(retry=Retry(total=4, backoff_factor=0.5, "
        "status_forcelist=(429, 500, 502, 503, 504))))`; Retry-After is honoured by default"
    ),
    "aiohttp-retry": (
        "`RetryClient(retry_options=ExponentialRetry(attempts=5, statuses={429}, "
        "exceptions={aiohttp.ClientError}))` (every 5xx is retried by default), with "
        "`get_timeout` overridden to return the response's Retry-After when it has one, as "
        "its README suggests (the response is passed to `get_timeout` for that)"
    ),
    "tenacity": (
        "`@retry(retry=retry_if_result(status in (429, 5xx)) | "
        "retry_if_exception_type(httpx.TransportError), stop=stop_after_attempt(5), "
        "wait=<Retry-After when present, else wait_exponential_jitter()>, "
        "retry_error_callback=<return the last response>)` around `await client.get(url)`"
    ),
    "backoff": (
        "`@on_predicate(expo, status in 5xx, max_tries=5)` over "
        "`@on_predicate(runtime, status == 429, value=<Retry-After>, jitter=None, "
        "max_tries=5)` (the README's Retry-After recipe) over "
        "`@on_exception(expo, httpx.TransportError, max_tries=5)`, around "
        "`await client.get(url)`; stacked decorators, as backoff's README combines them"
    ),
    "stamina": (
        "`@stamina.retry(on=<hook>, attempts=5)` around `await client.get(url)` + "
        "`raise_for_status()`; the hook retries `httpx.TransportError` and "
        "`HTTPStatusError` for 429/5xx and returns the Retry-After seconds as the wait when "
        "present (a backoff hook, stamina >= 25.2); retry log hooks off"
    ),
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available(library: str) -> bool:
    """Whether ``library`` (a `DISTRIBUTIONS` key) can be imported here."""
    return _importable(_MODULES[library])


def version(library: str) -> str | None:
    """The installed version of ``library``, or None."""
    try:
        return importlib.metadata.version(DISTRIBUTIONS[library])
    except importlib.metadata.PackageNotFoundError:
        return None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """A delta-seconds ``Retry-After`` as the peers' recipes parse it; None when absent."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


@dataclass(frozen=True)
class TokenSetup:
    """A stale bearer token, and where forbear's `TokenSource` exchanges it."""

    stale: str
    exchange_url: str
    origin: str


@dataclass(frozen=True)
class Setup:
    """What a scenario changes in every client."""

    fast: bool = False
    budget: bool = True
    token: TokenSetup | None = None


def forbear_policy(setup: Setup) -> Policy:
    """`Policy()`, with the fast backoff when the scenario asks for it."""
    if setup.fast:
        return Policy(backoff=Backoff(initial=FAST_INITIAL, max=FAST_MAX))
    return Policy()


def forbear_scope(setup: Setup | None = None) -> dict[str, Any]:
    """A fresh ``gate`` and ``budget`` for one forbear candidate (the budget None when off).

    Built anew for every client a scenario opens, never the process's shared pair, so each
    candidate starts knowing nothing about the origin, whatever ran before it.
    """
    budget = setup is None or setup.budget
    return {"gate": HostGate(), "budget": RetryBudget() if budget else None}


def _static_headers(setup: Setup) -> dict[str, str]:
    """The stale token as a fixed header, for clients with no token source."""
    return {"Authorization": f"Bearer {setup.token.stale}"} if setup.token else {}


def _async_token(setup: Setup) -> TokenSource | None:
    token = setup.token
    if token is None:
        return None

    async def exchange() -> str:
        async with httpx.AsyncClient() as plain:
            reply = await plain.post(token.exchange_url)
            return str(reply.json()["access_token"])

    return TokenSource(exchange, origins=[token.origin], token=token.stale)


def _sync_token(setup: Setup) -> TokenSource | None:
    token = setup.token
    if token is None:
        return None

    def exchange() -> str:
        with httpx.Client() as plain:
            return str(plain.post(token.exchange_url).json()["access_token"])

    return TokenSource(exchange, origins=[token.origin], token=token.stale)


def _async_client(setup: Setup, transport: httpx.AsyncBaseTransport | None = None) -> Any:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    return httpx.AsyncClient(
        transport=transport or httpx.AsyncHTTPTransport(limits=limits),
        timeout=TIMEOUT,
        headers=_static_headers(setup),
    )


def _inner_async_transport() -> httpx.AsyncHTTPTransport:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    return httpx.AsyncHTTPTransport(limits=limits)


# -- decorators around plain calls (the crawl, the outage, the happy path) ------------------


def tenacity_retry(fast: bool = False) -> Callable[[Any], Any]:
    """tenacity, configured for 429/5xx, Retry-After and five attempts."""
    import tenacity

    fallback = (
        tenacity.wait_exponential_jitter(initial=FAST_INITIAL, max=FAST_MAX, jitter=FAST_INITIAL)
        if fast
        else tenacity.wait_exponential_jitter()
    )

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            seconds = retry_after(outcome.result().headers)
            if seconds is not None:
                return seconds
        return float(fallback(state))

    def last_result(state: tenacity.RetryCallState) -> Any:
        assert state.outcome is not None
        return state.outcome.result()  # the last response, or the last error re-raised

    return tenacity.retry(
        retry=tenacity.retry_if_result(lambda response: response.status_code in RETRY_STATUSES)
        | tenacity.retry_if_exception_type(httpx.TransportError),
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        wait=wait,
        retry_error_callback=last_result,
    )


def backoff_retry(fast: bool = False) -> Callable[[Any], Any]:
    """backoff, configured for 429/5xx, Retry-After and five attempts (stacked decorators)."""
    import backoff

    expo: dict[str, Any] = {"factor": FAST_INITIAL, "max_value": FAST_MAX} if fast else {}

    def header_wait(response: httpx.Response) -> float:
        seconds = retry_after(response.headers)
        return FAST_INITIAL if seconds is None else seconds

    def decorate(fn: Any) -> Any:
        fn = backoff.on_exception(
            backoff.expo, httpx.TransportError, max_tries=ATTEMPTS, logger=None, **expo
        )(fn)
        fn = backoff.on_predicate(
            backoff.runtime,
            lambda response: response.status_code == 429,
            value=header_wait,
            jitter=None,
            max_tries=ATTEMPTS,
            logger=None,
        )(fn)
        return backoff.on_predicate(
            backoff.expo,
            lambda response: response.status_code in RETRY_STATUSES[1:],
            max_tries=ATTEMPTS,
            logger=None,
            **expo,
        )(fn)

    return decorate


def stamina_retry(fast: bool = False) -> Callable[[Any], Any]:
    """stamina, configured for 429/5xx (raised), Retry-After (a backoff hook), five attempts."""
    import stamina
    import stamina.instrumentation

    # stamina logs every scheduled retry at WARNING; a crawl would print thousands of lines.
    stamina.instrumentation.set_on_retry_hooks([])

    def hook(exc: Exception) -> bool | float:
        if isinstance(exc, httpx.HTTPStatusError):
            if exc.response.status_code not in RETRY_STATUSES:
                return False
            seconds = retry_after(exc.response.headers)
            return True if seconds is None else seconds
        return isinstance(exc, httpx.TransportError)

    waits: dict[str, Any] = (
        {"wait_initial": FAST_INITIAL, "wait_max": FAST_MAX, "wait_jitter": FAST_INITIAL}
        if fast
        else {}
    )
    return stamina.retry(on=hook, attempts=ATTEMPTS, **waits)


# -- candidates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One client to run a scenario with."""

    name: str
    #: The retry library (a `DISTRIBUTIONS` key), for its version.
    library: str
    #: Modules that must be importable to run it.
    requires: tuple[str, ...]
    #: The client underneath: "httpx" (async), "aiohttp" or "requests" (threads).
    client: str
    #: ``setup -> (async) context manager yielding fetch``.
    open: Callable[[Setup], Any]
    #: Re-exchanges an expired token (forbear's transport adapters).
    reauth: bool = False
    #: A reference row without retries.
    bare: bool = False

    @property
    def is_async(self) -> bool:
        return self.client != "requests"

    @property
    def installed(self) -> bool:
        """Whether every module it needs can be imported here."""
        return all(_importable(module) for module in self.requires)


@contextlib.asynccontextmanager
async def _bare_httpx(setup: Setup) -> AsyncIterator[AsyncFetch]:
    async with _async_client(setup) as client:

        async def fetch(url: str) -> int:
            return int((await client.get(url)).status_code)

        yield fetch


@contextlib.asynccontextmanager
async def _bare_aiohttp(setup: Setup) -> AsyncIterator[AsyncFetch]:
    import aiohttp

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONNECTIONS), headers=_static_headers(setup)
    ) as session:

        async def fetch(url: str) -> int:
            async with session.get(url) as response:
                await response.read()
                return int(response.status)

        yield fetch


@contextlib.contextmanager
def _bare_requests(setup: Setup) -> Iterator[SyncFetch]:
    import requests
    from requests.adapters import HTTPAdapter

    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=CONNECTIONS))
        session.headers.update(_static_headers(setup))

        def fetch(url: str) -> int:
            return int(session.get(url, timeout=TIMEOUT).status_code)

        yield fetch


@contextlib.asynccontextmanager
async def _forbear_httpx(setup: Setup) -> AsyncIterator[AsyncFetch]:
    from forbear_httpx import RetryTransport

    transport = RetryTransport(
        _inner_async_transport(),
        policy=forbear_policy(setup),
        token=_async_token(setup),
        **forbear_scope(setup),
    )
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:

        async def fetch(url: str) -> int:
            return int((await client.get(url)).status_code)

        yield fetch


@contextlib.asynccontextmanager
async def _forbear_aiohttp(setup: Setup) -> AsyncIterator[AsyncFetch]:
    import aiohttp
    from forbear_aiohttp import RetryMiddleware

    middleware = RetryMiddleware(
        policy=forbear_policy(setup), token=_async_token(setup), **forbear_scope(setup)
    )
    async with aiohttp.ClientSession(
        middlewares=[middleware], connector=aiohttp.TCPConnector(limit=CONNECTIONS)
    ) as session:

        async def fetch(url: str) -> int:
            async with session.get(url) as response:
                await response.read()
                return int(response.status)

        yield fetch


@contextlib.contextmanager
def _forbear_requests(setup: Setup) -> Iterator[SyncFetch]:
    import requests
    from forbear_requests import RetryAdapter
    from requests.adapters import HTTPAdapter

    adapter = RetryAdapter(
        HTTPAdapter(pool_connections=1, pool_maxsize=CONNECTIONS),
        policy=forbear_policy(setup),
        token=_sync_token(setup),
        **forbear_scope(setup),
    )
    with requests.Session() as session:
        session.mount("http://", adapter)

        def fetch(url: str) -> int:
            return int(session.get(url, timeout=TIMEOUT).status_code)

        yield fetch


@contextlib.asynccontextmanager
async def _forbear_backoff(setup: Setup) -> AsyncIterator[AsyncFetch]:
    import forbear_backoff

    async with _async_client(setup) as client:

        @forbear_backoff.on_response(policy=forbear_policy(setup), **forbear_scope(setup))
        async def get(url: str) -> httpx.Response:
            return await client.get(url)

        async def fetch(url: str) -> int:
            return int((await get(url)).status_code)

        yield fetch


@contextlib.asynccontextmanager
async def _forbear_tenacity(setup: Setup) -> AsyncIterator[AsyncFetch]:
    import forbear_tenacity

    async with _async_client(setup) as client:

        @forbear_tenacity.retry(policy=forbear_policy(setup), **forbear_scope(setup))
        async def get(url: str) -> httpx.Response:
            return await client.get(url)

        async def fetch(url: str) -> int:
            return int((await get(url)).status_code)

        yield fetch


@contextlib.contextmanager
def _urllib3(setup: Setup) -> Iterator[SyncFetch]:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=ATTEMPTS - 1,
        backoff_factor=FAST_INITIAL if setup.fast else 0.5,
        backoff_max=FAST_MAX if setup.fast else Retry.DEFAULT_BACKOFF_MAX,
        status_forcelist=RETRY_STATUSES,
        raise_on_status=False,
    )
    with requests.Session() as session:
        session.mount(
            "http://", HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=CONNECTIONS)
        )
        session.headers.update(_static_headers(setup))

        def fetch(url: str) -> int:
            return int(session.get(url, timeout=TIMEOUT).status_code)

        yield fetch


@contextlib.asynccontextmanager
async def _httpx_retries(setup: Setup) -> AsyncIterator[AsyncFetch]:
    from httpx_retries import Retry, RetryTransport

    retry = Retry(
        total=ATTEMPTS - 1,
        backoff_factor=FAST_INITIAL if setup.fast else 0.5,
        max_backoff_wait=FAST_MAX if setup.fast else 120.0,
        status_forcelist=RETRY_STATUSES,
    )
    transport = RetryTransport(transport=_inner_async_transport(), retry=retry)
    async with _async_client(setup, transport) as client:

        async def fetch(url: str) -> int:
            return int((await client.get(url)).status_code)

        yield fetch


def aiohttp_retry_options(fast: bool = False) -> Any:
    """aiohttp-retry's `ExponentialRetry`, reading Retry-After in ``get_timeout``."""
    import aiohttp
    from aiohttp_retry import ExponentialRetry

    class RetryAfterExponentialRetry(ExponentialRetry):  # type: ignore[misc]
        def get_timeout(self, attempt: int, response: Any = None) -> float:
            if response is not None:
                seconds = retry_after(response.headers)
                if seconds is not None:
                    return seconds
            return float(super().get_timeout(attempt, response))

    waits: dict[str, Any] = {"start_timeout": FAST_INITIAL, "max_timeout": FAST_MAX} if fast else {}
    return RetryAfterExponentialRetry(
        attempts=ATTEMPTS, statuses={429}, exceptions={aiohttp.ClientError}, **waits
    )


@contextlib.asynccontextmanager
async def _aiohttp_retry(setup: Setup) -> AsyncIterator[AsyncFetch]:
    import aiohttp
    from aiohttp_retry import RetryClient

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONNECTIONS), headers=_static_headers(setup)
    ) as session:
        client = RetryClient(
            client_session=session, retry_options=aiohttp_retry_options(setup.fast)
        )

        async def fetch(url: str) -> int:
            async with client.get(url) as response:
                await response.read()
                return int(response.status)

        yield fetch


def _decorated(make: Callable[[bool], Callable[[Any], Any]], raises: bool) -> Any:
    """A candidate: ``make(fast)`` decorating a plain ``httpx.AsyncClient.get`` call."""

    @contextlib.asynccontextmanager
    async def open_(setup: Setup) -> AsyncIterator[AsyncFetch]:
        async with _async_client(setup) as client:

            async def plain(url: str) -> httpx.Response:
                response = await client.get(url)
                if raises:
                    response.raise_for_status()
                return response

            get = make(setup.fast)(plain)

            async def fetch(url: str) -> int:
                try:
                    return int((await get(url)).status_code)
                except httpx.HTTPStatusError as exc:  # stamina re-raises the last status error
                    return int(exc.response.status_code)

            yield fetch

    return open_


#: Every candidate of the crawl, the outage and the token scenario: forbear's adapters first,
#: forbear-tenacity next to tenacity.
CANDIDATES = (
    Candidate(
        "forbear-httpx (async)",
        "forbear",
        ("forbear_httpx",),
        "httpx",
        _forbear_httpx,
        reauth=True,
    ),
    Candidate(
        "forbear-aiohttp",
        "forbear",
        ("forbear_aiohttp", "aiohttp"),
        "aiohttp",
        _forbear_aiohttp,
        reauth=True,
    ),
    Candidate(
        "forbear-requests (threads)",
        "forbear",
        ("forbear_requests", "requests"),
        "requests",
        _forbear_requests,
        reauth=True,
    ),
    Candidate(
        "forbear-backoff (httpx async)",
        "forbear",
        ("forbear_backoff", "backoff"),
        "httpx",
        _forbear_backoff,
    ),
    Candidate(
        "urllib3 Retry (requests, threads)",
        "urllib3",
        ("requests", "urllib3"),
        "requests",
        _urllib3,
    ),
    Candidate(
        "httpx-retries (async)", "httpx-retries", ("httpx_retries",), "httpx", _httpx_retries
    ),
    Candidate(
        "aiohttp-retry", "aiohttp-retry", ("aiohttp_retry", "aiohttp"), "aiohttp", _aiohttp_retry
    ),
    Candidate(
        "forbear-tenacity (httpx async)",
        "forbear",
        ("forbear_tenacity", "tenacity"),
        "httpx",
        _forbear_tenacity,
    ),
    Candidate(
        "tenacity (httpx async)",
        "tenacity",
        ("tenacity",),
        "httpx",
        _decorated(tenacity_retry, False),
    ),
    Candidate(
        "backoff (httpx async)", "backoff", ("backoff",), "httpx", _decorated(backoff_retry, False)
    ),
    Candidate(
        "stamina (httpx async)", "stamina", ("stamina",), "httpx", _decorated(stamina_retry, True)
    ),
    Candidate("bare httpx, no retries", "httpx", ("httpx",), "httpx", _bare_httpx, bare=True),
)

#: The bare clients, no retries, one per kind of client: the crawl runs them against the
#: limiter's unlimited twin to show each client's own ceiling at the crawl's concurrency.
FLOORS = {
    "httpx": Candidate("bare httpx (async)", "httpx", ("httpx",), "httpx", _bare_httpx, bare=True),
    "aiohttp": Candidate(
        "bare aiohttp", "aiohttp", ("aiohttp",), "aiohttp", _bare_aiohttp, bare=True
    ),
    "requests": Candidate(
        "bare requests (threads)", "requests", ("requests",), "requests", _bare_requests, bare=True
    ),
}
