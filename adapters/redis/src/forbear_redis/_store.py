"""`Store`: the fleet's Redis client, its scripts, and whether Redis is answering.

Every call is bounded by the client's socket timeouts (connect and read) and made once, never
retried by the client. The first failure marks the store down and logs one warning on the
``forbear.redis`` logger; while it is down nobody calls Redis (the process scope carries on) and
only the fleet's flusher probes it, every ``probe_every`` seconds, with a ``PING``. The first
answer marks it up again and logs that the fleet scope resumed.

Async callers run the same sync client on a worker thread (`anyio.to_thread`): one client and
one connection pool serve every thread and event loop (asyncio or trio) of the process, and a
forked child makes its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import _scripts

__all__ = ["Store", "StoreDown", "logger"]

#: Where the fleet says that Redis stopped (one warning per outage) or answers again.
logger = logging.getLogger("forbear.redis")

T = TypeVar("T")


class StoreDown(Exception):
    """Redis did not answer in time (or is known to be down): use the process scope."""


class Store:
    """One Redis client with short time bounds, the fleet's scripts, and its health."""

    def __init__(self, url: str, *, timeout: float, probe_every: float) -> None:
        if timeout <= 0:
            raise ValueError(f"Fleet.timeout must be > 0, got {timeout!r}")
        self._url = url
        self.timeout = timeout
        self.probe_every = probe_every
        self._lock = threading.Lock()
        self._client = self._connect()
        self._pid = os.getpid()
        kwargs = self._client.connection_pool.connection_kwargs
        # Host and port only: a URL may carry a password.
        self.where = str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")
        #: False from the first failure until Redis answers a probe again.
        self.up = True
        self._next_probe = 0.0
        #: Round trips made, failures seen, and outages begun (for tests and metrics).
        self.calls = 0
        self.failures = 0
        self.outages = 0
        self.reserve = self._client.register_script(_scripts.RESERVE)
        self.sync = self._client.register_script(_scripts.SYNC)
        self.unlock = self._client.register_script(_scripts.UNLOCK)
        self.set_rate = self._client.register_script(_scripts.SET_RATE)

    def __repr__(self) -> str:
        return f"Store({self.where}, {'up' if self.up else 'down'})"

    def _connect(self) -> redis.Redis:
        return redis.Redis.from_url(
            self._url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )

    def client(self) -> redis.Redis:
        """The client for this process (a forked child gets a fresh one)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._client = self._connect()
                    self._pid = os.getpid()
        return self._client

    def run(self, call: Callable[[redis.Redis], T]) -> T:
        """``call(client)``, once and bounded in time; raises `StoreDown` instead of failing."""
        if not self.up:
            raise StoreDown
        self.calls += 1
        try:
            return call(self.client())
        except Exception as exc:  # whatever Redis or the network did: never the caller's
            self.failed(exc)
            raise StoreDown from None

    def failed(self, error: BaseException) -> None:
        """Mark the store down; the first failure of an outage logs one warning."""
        with self._lock:
            self.failures += 1
            if not self.up:
                return
            self.up = False
            self.outages += 1
            self._next_probe = time.monotonic() + self.probe_every
        logger.warning(
            "forbear: Redis at %s did not answer (%s); each process paces on its own until it does",
            self.where,
            type(error).__name__,
        )

    def probe(self) -> bool:
        """While down, ``PING`` Redis at most every ``probe_every`` s; True once it answers."""
        if self.up:
            return True
        now = time.monotonic()
        if now < self._next_probe:
            return False
        self._next_probe = now + self.probe_every
        try:
            self.calls += 1
            self.client().ping()
        except Exception:
            return False
        with self._lock:
            self.up = True
        logger.info("forbear: Redis at %s answers again; the fleet scope resumed", self.where)
        return True

    def close(self) -> None:
        """Close the client's connections."""
        with contextlib.suppress(Exception):  # closing never fails the caller
            self._client.close()


def sleep_until(deadline: float, step: float) -> bool:
    """Sleep ``step`` seconds or until ``deadline``; False when the deadline has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    time.sleep(min(step, left))
    return True
