"""What the worker processes of the multi-process tests run (imported by spawned children)."""

from __future__ import annotations

import os
import time
from typing import Any

from forbear_redis import Fleet

KEY = "http://paced.test"


def reserve_slots(url: str, namespace: str, count: int, barrier: Any, out: Any) -> None:
    """Reserve ``count`` send slots for `KEY`; put their monotonic times on ``out``.

    Each slot is a pair, its earliest and latest possible time: the script counts the wait from
    the moment it runs, somewhere between sending it and reading its answer (six processes on
    two cores are often descheduled in between).
    """
    fleet = Fleet(url, namespace=namespace)
    barrier.wait()
    slots = []
    for _ in range(count):
        sent = time.monotonic()
        wait = fleet.gate.reserve_sync(KEY)
        slots.append((sent + wait, time.monotonic() + wait))
    out.put((os.getpid(), slots, fleet.store.up))
    fleet.close()


def exchange_log(path: str) -> int:
    with open(path, encoding="utf-8") as log:
        return sum(1 for _ in log)


def _exchange(path: str) -> str:
    """Count this exchange in a shared file and return a token numbered by it."""
    time.sleep(0.2)  # a slow exchange, so every worker asks while it runs
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()}\n")
    return f"token-{exchange_log(path)}"


def refresh_token(url: str, namespace: str, log_path: str, barrier: Any, out: Any) -> None:
    """Get the fleet's token, then, together with the others, refresh it as stale."""
    fleet = Fleet(url, namespace=namespace)
    source = fleet.token(lambda: _exchange(log_path), origins=["http://api.test"], timeout=10)
    barrier.wait()
    first = source.get_sync()
    barrier.wait()
    second = source.refresh_sync(first)
    out.put((first, second))
    fleet.close()
