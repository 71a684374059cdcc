"""`FleetExchange`: the token exchange of a `forbear.TokenSource` shared by a fleet via Redis.

`forbear_redis.Fleet.token` returns a plain `forbear.TokenSource` whose exchange is a
`FleetExchange`: the source keeps its single flight within the process (threads and event
loops), and the exchange makes it single-flight across the fleet:

1. The token stored in Redis, when it differs from the one this worker was refused with, is
   adopted without an exchange (a worker that starts later, or one whose neighbour already
   re-exchanged).
2. Otherwise one worker takes a lock (``SET NX`` with an expiry of the source's timeout), runs
   the user's exchange, stores the new token under a TTL and releases the lock; the others
   poll for the new token until the lock is gone (then one of them leads) or time runs out.

When Redis is down or slow, the worker exchanges on its own: the process scope. The token is
the only secret the fleet stores; it is never logged.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread

from ._store import Store, StoreDown, sleep_until

__all__ = ["FleetExchange"]

#: How often a worker waiting for another's exchange looks for the new token.
POLL = 0.02


class FleetExchange:
    """The exchange a fleet's `TokenSource` calls: adopt the fleet's token, or lead one exchange."""

    def __init__(
        self,
        store: Store,
        redis_key: str,
        exchange: Callable[[], str | Awaitable[str]],
        *,
        ttl: float,
        timeout: float,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"Fleet.token ttl must be > 0, got {ttl!r}")
        self._store = store
        self._key = redis_key
        self._lock_key = redis_key + ":lock"
        self._exchange = exchange
        self._ttl_ms = max(int(ttl * 1000), 1)
        self._timeout = timeout
        self._guard = threading.Lock()
        #: The token this worker holds (the stale one when the source calls again).
        self._held: str | None = None
        #: Exchanges this worker ran itself (the user's exchange was called).
        self.exchanges = 0
        #: Tokens adopted from the fleet without an exchange.
        self.adopted = 0

    def __repr__(self) -> str:
        return f"FleetExchange({self._store!r}, exchanges={self.exchanges})"

    def __call__(self) -> str | Awaitable[str]:
        """A token newer than the one held: the fleet's, or a fresh one from the exchange."""
        stale = self._held
        deadline = time.monotonic() + self._timeout
        try:
            while True:
                current = self._get()
                if current is not None and current != stale:
                    self.adopted += 1
                    return self._hold(current)
                owner = uuid.uuid4().hex
                if self._take_lock(owner):
                    current = self._get()  # another worker may have just finished
                    if current is not None and current != stale:
                        self._unlock(owner)
                        self.adopted += 1
                        return self._hold(current)
                    return self._lead(owner)
                while self._store.run(lambda client: client.exists(self._lock_key)):
                    current = self._get()
                    if current is not None and current != stale:
                        self.adopted += 1
                        return self._hold(current)
                    if not sleep_until(deadline, POLL):
                        raise TimeoutError("the fleet's token exchange took too long")
        except StoreDown:
            return self._alone()

    # -- internals -------------------------------------------------------------------------

    def _take_lock(self, owner: str) -> bool:
        lock_ms = max(int(self._timeout * 1000), 1)
        return bool(
            self._store.run(lambda client: client.set(self._lock_key, owner, nx=True, px=lock_ms))
        )

    def _get(self) -> str | None:
        value = self._store.run(lambda client: client.get(self._key))
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace") or None
        return None

    def _hold(self, token: str) -> str:
        with self._guard:
            self._held = token
        return token

    def _lead(self, owner: str) -> str | Awaitable[str]:
        """Run the user's exchange under the fleet's lock, store its token, release the lock."""
        try:
            value = self._exchange()
        except BaseException:
            self._unlock(owner)
            raise
        self.exchanges += 1
        if inspect.isawaitable(value):
            return self._finish(value, owner)
        return self._publish(value, owner)

    async def _finish(self, pending: Awaitable[str], owner: str) -> str:
        try:
            token = await pending
        except BaseException:
            await anyio.to_thread.run_sync(self._unlock, owner, abandon_on_cancel=True)
            raise
        return await anyio.to_thread.run_sync(self._publish, token, owner, abandon_on_cancel=True)

    def _publish(self, token: Any, owner: str) -> str:
        if isinstance(token, str) and token:
            # When Redis is down this worker keeps it; the others exchange on their own.
            with contextlib.suppress(StoreDown):
                self._store.run(lambda client: client.set(self._key, token, px=self._ttl_ms))
            self._hold(token)
        self._unlock(owner)
        return token  # type: ignore[no-any-return]  # the source judges what is not a token

    def _unlock(self, owner: str) -> None:
        with contextlib.suppress(StoreDown):  # else the lock expires on its own
            self._store.run(
                lambda client: self._store.unlock(
                    keys=[self._lock_key], args=[owner], client=client
                )
            )

    def _alone(self) -> str | Awaitable[str]:
        """Redis is down or slow: exchange as a single process would."""
        value = self._exchange()
        self.exchanges += 1
        if inspect.isawaitable(value):
            return self._keep(value)
        if isinstance(value, str) and value:
            self._hold(value)
        return value

    async def _keep(self, pending: Awaitable[str]) -> str:
        token = await pending
        if isinstance(token, str) and token:
            self._hold(token)
        return token
