"""`forbear-demo`: a concurrent crawl of the three seed-API emulators, with and without forbear.

The emulators from `forbear_testing` run on 127.0.0.1 with their faults switched on: rate
limits answering 429 + ``Retry-After``, 5xx bursts, Sarucci tokens that expire mid-run and an
expired partner-API upload session. The same seeded workload is crawled through every adapter
that is installed (httpx async, aiohttp, requests in a thread pool) and through a bare httpx
client, and a table compares them. ``pip install "forbear-testing[demo]"`` brings every adapter
and ``rich``, which draws progress bars when present. ``make demo`` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from forbear import (
    Action,
    Event,
    HostGate,
    Policy,
    RetryBudget,
    TokenExchangeError,
    TokenSource,
    parse_error,
)

from ._emulator import Faults
from ._partner import PartnerAPI
from ._policy import PolicyAPI
from ._sarucci import SarucciAPI
from ._server import serve

__all__ = ["Job", "Tally", "main", "run_demo", "workload"]

#: The adapters the demo crawls with, by import name: (distribution, client library).
ADAPTERS: dict[str, tuple[str, str]] = {
    "forbear_httpx": ("forbear-httpx", "httpx"),
    "forbear_aiohttp": ("forbear-aiohttp", "aiohttp"),
    "forbear_requests": ("forbear-requests", "requests"),
}
INSTALL_HINT = 'pip install "forbear-testing[demo]"'

_SARUCCI_COMPANY = "cmp_demo"


@dataclass(frozen=True, slots=True)
class Job:
    """One logical request of the crawl and what a correct client ends up with."""

    api: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    #: The status a correct client gets in the end (2xx: it must succeed).
    expect: int = 200


@dataclass
class Tally:
    """What one crawl did; the event hook and the crawl fill it from any thread."""

    name: str
    requests: int = 0
    succeeded: int = 0
    handed_back: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    lost: int = 0
    #: How the lost requests ended: a status, or an exception's type.
    lost_as: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    #: Token exchanges after the first: 401s that carried one stale token share one.
    reauths: int = 0
    waited_on_retry_after: float = 0.0
    arrivals: int = 0
    elapsed: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def event(self, event: Event) -> None:
        """The adapters' ``on_event`` hook."""
        with self._lock:
            if event.action is Action.RETRY:
                self.retries += 1
                if event.reason in ("retry-after", "rate-limit-reset"):
                    self.waited_on_retry_after += event.wait

    def record(
        self, job: Job, status: int | None, headers: Any, body: bytes, error: str = ""
    ) -> None:
        """The final answer to ``job`` (``status`` None: the exception named ``error``)."""
        with self._lock:
            self.requests += 1
            if status is not None and 200 <= status < 300 and job.expect < 300:
                self.succeeded += 1
            elif status is not None and status == job.expect:
                info = parse_error(status, headers, body)
                label = f"{status} {info.code or info.error or ''}".strip()
                self.handed_back[label] = self.handed_back.get(label, 0) + 1
                if info.request_id:
                    self.examples.setdefault(label, info.request_id)
            else:
                self.lost += 1
                how = f"{job.api} {status}" if status is not None else f"{job.api} {error}"
                self.lost_as[how] = self.lost_as.get(how, 0) + 1


def workload(requests: int, seed: int) -> list[Job]:
    """A seeded mix across the three APIs, with a few requests that must fail as documented."""
    rng = random.Random(seed)
    jobs = []
    for index in range(requests):
        roll = rng.random()
        if index % 50 == 7:
            jobs.append(Job("partner", "PUT", "/v1/documents/upload/{session}/chunks/0", None, 410))
        elif index % 50 == 31:
            jobs.append(Job("sarucci", "GET", "/v1/partner/companies/cmp_missing", None, 404))
        elif roll < 0.4:
            jobs.append(Job("partner", "GET", "/v1/company"))
        elif roll < 0.7:
            order = {"action": "buy", "symbol": rng.choice(["ACME", "HALT"]), "quantity": 10}
            jobs.append(Job("policy", "POST", "/v1/validate", order))
        else:
            jobs.append(Job("sarucci", "GET", f"/v1/partner/companies/{_SARUCCI_COMPANY}"))
    return jobs


class _Emulators:
    """The three emulators, served, with the faults the demo shows off."""

    def __init__(self, seed: int) -> None:
        self.partner = PartnerAPI(
            faults=Faults(rate=150.0, burst=10, fraction=0.03, status=500, seed=seed)
        )
        self.policy = PolicyAPI(
            limit=80, window=1.0, faults=Faults(fraction=0.04, status=503, seed=seed + 1)
        )
        self.sarucci = SarucciAPI(
            faults=Faults(fraction=0.04, status=502, token_ttl=1.5, seed=seed + 2)
        )
        self.company_key = ""
        self.session = ""
        self.last_token: TokenSource | None = None

    @contextmanager
    def served(self) -> Iterator[_Emulators]:
        with ExitStack() as stack:
            for service in (self.partner, self.policy, self.sarucci):
                stack.enter_context(serve(service))
            yield self

    def prepare(self) -> None:
        """Fresh state for the next crawl: a company, an upload session that has expired."""
        for service in (self.partner, self.policy, self.sarucci):
            service.reset()
        self.company_key = self.partner.add_company("Demo Holdings Ltd").company_key
        with httpx.Client(base_url=self.partner.url) as client:
            started = client.post(
                "/v1/documents/upload/start",
                headers={"X-API-Key": self.company_key},
                json={"fileName": "report.pdf", "totalChunks": 1},
            )
            self.session = started.json()["sessionId"]
        self.partner.expire_uploads()

    def arrivals(self) -> int:
        return sum(len(s.arrivals()) for s in (self.partner, self.policy, self.sarucci))

    def request(self, job: Job) -> tuple[str, str, dict[str, str], bytes | None]:
        """Method, URL, headers and body for ``job`` (the Sarucci token is added by forbear)."""
        headers: dict[str, str] = {}
        if job.api == "partner":
            base = self.partner.url
            headers["X-API-Key"] = self.company_key
        elif job.api == "policy":
            base = self.policy.url
            headers["Authorization"] = f"Bearer {self.policy.key}"
            headers["Content-Type"] = "application/json"
        else:
            base = self.sarucci.url
        body = None if job.body is None else json.dumps(job.body).encode()
        path = job.path.replace("{session}", self.session)
        return job.method, base + path, headers, body

    def exchange_sync(self) -> str:
        """Trade the partner's client credentials for a bearer token (retried by forbear too)."""
        with httpx.Client(transport=_exchange_transport()) as client:
            answer = client.post(
                self.sarucci.url + "/v1/auth/token", data=self.sarucci.partner.form()
            )
            answer.raise_for_status()
            return str(answer.json()["access_token"])

    async def exchange_async(self) -> str:
        """The async twin of `exchange_sync`."""
        async with httpx.AsyncClient(transport=_exchange_transport()) as client:
            answer = await client.post(
                self.sarucci.url + "/v1/auth/token", data=self.sarucci.partner.form()
            )
            answer.raise_for_status()
            return str(answer.json()["access_token"])

    def token(self, *, sync: bool) -> TokenSource:
        exchange = self.exchange_sync if sync else self.exchange_async
        self.last_token = TokenSource(exchange, origins=[self.sarucci.url])
        return self.last_token


def _exchange_transport() -> Any:
    """The token endpoint fails like any other: retry it with forbear when forbear-httpx is here."""
    if _installed("forbear_httpx"):
        from forbear_httpx import RetryTransport

        # Issuing a token twice does no harm: the exchange's POST is safe to repeat.
        safe = Policy(idempotent_methods=Policy().idempotent_methods | {"POST"})
        return RetryTransport(policy=safe, budget=None)
    return None


# -- the crawls ----------------------------------------------------------------------------------

Progress = Callable[[], None]
_POLICY = Policy()


def _fresh_scope() -> dict[str, Any]:
    """A gate and a budget of the crawl's own: no crawl inherits what another one learned."""
    return {"gate": HostGate(), "budget": RetryBudget()}


async def _bounded(
    jobs: list[Job], concurrency: int, one: Callable[[Job], Awaitable[None]]
) -> None:
    queue = iter(jobs)

    async def worker() -> None:
        for job in queue:
            await one(job)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _crawl_httpx(
    env: _Emulators, jobs: list[Job], tally: Tally, n: int, step: Progress, *, bare: bool = False
) -> None:
    """Through `forbear_httpx.RetryTransport`, or (``bare``) through httpx alone."""
    transport: Any = None
    token: str | None = None
    if bare:
        token = await env.exchange_async()  # once: a bare client cannot re-exchange
    else:
        from forbear_httpx import RetryTransport

        transport = RetryTransport(
            policy=_POLICY,
            token=env.token(sync=False),
            idempotency_keys=True,
            on_event=tally.event,
            **_fresh_scope(),
        )
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(transport=transport, timeout=30.0, limits=limits) as client:

        async def one(job: Job) -> None:
            method, url, headers, body = env.request(job)
            if token is not None and job.api == "sarucci":
                headers["Authorization"] = f"Bearer {token}"
            try:
                answer = await client.request(method, url, headers=headers, content=body)
                tally.record(job, answer.status_code, answer.headers, answer.content)
            except (httpx.HTTPError, TokenExchangeError) as exc:
                tally.record(job, None, {}, b"", type(exc).__name__)
            step()

        await _bounded(jobs, n, one)


async def _crawl_bare(
    env: _Emulators, jobs: list[Job], tally: Tally, n: int, step: Progress
) -> None:
    await _crawl_httpx(env, jobs, tally, n, step, bare=True)


async def _crawl_aiohttp(
    env: _Emulators, jobs: list[Job], tally: Tally, n: int, step: Progress
) -> None:
    import aiohttp

    from forbear_aiohttp import RetryMiddleware

    middleware = RetryMiddleware(
        policy=_POLICY,
        token=env.token(sync=False),
        idempotency_keys=True,
        on_event=tally.event,
        **_fresh_scope(),
    )
    connector = aiohttp.TCPConnector(limit=n)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        middlewares=[middleware], connector=connector, timeout=timeout
    ) as session:

        async def one(job: Job) -> None:
            method, url, headers, body = env.request(job)
            try:
                async with session.request(method, url, headers=headers, data=body) as answer:
                    content = await answer.read()
                    tally.record(job, answer.status, answer.headers, content)
            except (aiohttp.ClientError, TokenExchangeError) as exc:
                tally.record(job, None, {}, b"", type(exc).__name__)
            step()

        await _bounded(jobs, n, one)


def _crawl_requests(env: _Emulators, jobs: list[Job], tally: Tally, n: int, step: Progress) -> None:
    import requests

    from forbear_requests import RetryAdapter

    adapter = RetryAdapter(
        requests.adapters.HTTPAdapter(pool_maxsize=n),
        policy=_POLICY,
        token=env.token(sync=True),
        idempotency_keys=True,
        on_event=tally.event,
        **_fresh_scope(),
    )
    local = threading.local()

    def one(job: Job) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.mount("http://", adapter)
        method, url, headers, body = env.request(job)
        try:
            answer = session.request(method, url, headers=headers, data=body, timeout=30)
            tally.record(job, answer.status_code, answer.headers, answer.content)
        except (requests.RequestException, TokenExchangeError) as exc:
            tally.record(job, None, {}, b"", type(exc).__name__)
        step()

    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="forbear-demo") as pool:
        list(pool.map(one, jobs))


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _missing_adapters() -> list[str]:
    """The distributions of the adapters (or their client libraries) that are not installed."""
    return [
        distribution
        for module, (distribution, client) in ADAPTERS.items()
        if not (_installed(module) and _installed(client))
    ]


def _crawls() -> list[tuple[str, Callable[..., Any], bool]]:
    """(label, crawl, is_async) for each adapter installed, then the bare client."""
    missing = _missing_adapters()
    found: list[tuple[str, Callable[..., Any], bool]] = []
    if "forbear-httpx" not in missing:
        found.append(("forbear httpx async", _crawl_httpx, True))
    if "forbear-aiohttp" not in missing:
        found.append(("forbear aiohttp", _crawl_aiohttp, True))
    if "forbear-requests" not in missing:
        found.append(("forbear requests", _crawl_requests, False))
    found.append(("bare httpx", _crawl_bare, True))
    return found


# -- output --------------------------------------------------------------------------------------


class _PlainBar:
    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done, self._shown = label, total, 0, -1
        self._lock = threading.Lock()

    def step(self) -> None:
        with self._lock:
            self.done += 1
            tenth = self.done * 10 // self.total
            if tenth != self._shown:
                self._shown = tenth
                bar = "#" * tenth + "." * (10 - tenth)
                print(f"  {self.label:<20} [{bar}] {self.done}/{self.total}", flush=True)


def _rows(tallies: list[Tally]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for t in tallies:
        rows.append(
            (
                t.name,
                str(t.requests),
                str(t.succeeded),
                str(sum(t.handed_back.values())),
                str(t.lost),
                str(t.retries),
                str(t.reauths),
                f"{t.waited_on_retry_after:.1f} s",
                str(t.arrivals),
                f"{t.elapsed:.1f} s",
            )
        )
    return rows


_HEADINGS = (
    "client",
    "requests",
    "ok",
    "errors",
    "lost",
    "retries",
    "re-exchanges",
    "RA waits",
    "arrivals",
    "elapsed",
)


def _print_table(tallies: list[Tally], console: Any) -> None:
    rows = _rows(tallies)
    if console is not None:
        from rich.table import Table

        table = Table(title="forbear demo")
        for heading in _HEADINGS:
            table.add_column(
                heading, justify="left" if heading == "client" else "right", no_wrap=True
            )
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADINGS)]
        print("  ".join(h.ljust(w) for h, w in zip(_HEADINGS, widths, strict=True)))
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(
        "errors: documented errors handed back as the server sent them; lost: requests that "
        "should have succeeded and did not; RA waits: Retry-After waited, summed over requests."
    )
    for t in tallies:
        for label, count in sorted(t.handed_back.items()):
            example = t.examples.get(label)
            seen = f" (e.g. request_id {example})" if example else ""
            print(f"  {t.name}: {count} x {label}{seen}")
        if t.lost_as:
            lost = ", ".join(f"{how} x{count}" for how, count in sorted(t.lost_as.items()))
            print(f"  {t.name}: lost {lost}")


def run_demo(
    *, requests: int = 600, concurrency: int = 50, seed: int = 7, plain: bool = False
) -> int:
    """Run the demo; 1 if forbear lost a request that should have succeeded, else 0."""
    if requests < 1 or concurrency < 1:
        print("forbear demo: --requests and --concurrency must be >= 1", file=sys.stderr)
        return 2
    missing = _missing_adapters()
    if len(missing) == len(ADAPTERS):
        print(f"forbear demo: no forbear adapter is installed; {INSTALL_HINT}", file=sys.stderr)
        return 2
    if missing:
        print(f"forbear demo: skipping {', '.join(missing)} (not installed; {INSTALL_HINT})")
    console = None
    if not plain and _installed("rich"):
        from rich.console import Console

        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    jobs = workload(requests, seed)
    print(
        f"forbear demo: {requests} requests per client at concurrency {concurrency} against "
        "three seed-API emulators on 127.0.0.1 (rate limits, 5xx bursts, expiring tokens)."
    )
    tallies: list[Tally] = []
    env = _Emulators(seed)
    with env.served():
        for label, crawl, is_async in _crawls():
            env.prepare()
            env.last_token = None
            before = env.arrivals()
            tally = Tally(label)
            started = time.monotonic()
            with _progress(console, label, len(jobs)) as step:
                if is_async:
                    asyncio.run(crawl(env, jobs, tally, concurrency, step))
                else:
                    crawl(env, jobs, tally, concurrency, step)
            tally.elapsed = time.monotonic() - started
            tally.arrivals = env.arrivals() - before
            if env.last_token is not None:
                tally.reauths = max(env.last_token.exchanges - 1, 0)
            tallies.append(tally)
    _print_table(tallies, console)
    forbear_lost = sum(t.lost for t in tallies if t.name.startswith("forbear"))
    bare_lost = sum(t.lost for t in tallies if t.name.startswith("bare"))
    print(f"forbear lost {forbear_lost} request(s); the bare client lost {bare_lost}.")
    return 1 if forbear_lost else 0


@contextmanager
def _progress(console: Any, label: str, total: int) -> Iterator[Progress]:
    if console is None:
        yield _PlainBar(label, total).step
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"{label:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(label, total=total)
        lock = threading.Lock()

        def step() -> None:
            with lock:
                progress.advance(task)

        yield step


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forbear-demo",
        description="Crawl the seed-API emulators through every installed forbear adapter.",
    )
    parser.add_argument("--requests", type=int, default=600, help="logical requests per adapter")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plain", action="store_true", help="no rich output even if installed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``forbear-demo`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    return run_demo(
        requests=args.requests, concurrency=args.concurrency, seed=args.seed, plain=args.plain
    )


if __name__ == "__main__":
    sys.exit(main())
