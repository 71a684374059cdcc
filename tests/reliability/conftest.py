"""Fixtures of the reliability suite: every test runs once per driver (see `drivers.py`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from forbear import Action, Event

from .drivers import DRIVERS, Driver


@pytest.fixture(params=DRIVERS, ids=str)
def driver(request: pytest.FixtureRequest) -> Driver:
    """Each adapter in turn: httpx sync, httpx on asyncio and trio, requests, aiohttp, backoff."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def header_driver(driver: Driver) -> Driver:
    """The drivers that attach tokens and forbear's own headers (every one but backoff)."""
    if not driver.adds_headers:
        pytest.skip(f"{driver} cannot add headers to the requests it retries")
    return driver


class Events:
    """An ``on_event`` hook that keeps every event and flags the first RETRY."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []
        #: Set when the first RETRY decision is emitted (the adapter is about to sleep).
        self.retrying = threading.Event()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
        if event.action is Action.RETRY:
            self.retrying.set()

    def reasons(self) -> list[str]:
        """The reason of every decision so far, in order."""
        with self._lock:
            return [event.reason for event in self.events]


@pytest.fixture
def events() -> Iterator[Events]:
    """A fresh event recorder for this test."""
    yield Events()
