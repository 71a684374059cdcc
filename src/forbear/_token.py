"""`TokenSource`: the current bearer token and its single-flight re-exchange.

The user's ``exchange`` callable (sync or async) returns a fresh token. Concurrent 401s that
carried the same stale token share one exchange; a failing or hung exchange fails every waiter
with one `TokenExchangeError` that never contains the token, and leaves the source usable.
The token is attached only to requests whose origin is listed, so a redirect to another host
never carries it. The token itself never appears in `repr`, events or exceptions.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

import anyio

from ._gate import origin_of

__all__ = ["TokenExchangeError", "TokenSource"]

Exchange = Callable[[], "str | Awaitable[str]"]


class TokenExchangeError(Exception):
    """The token exchange raised, returned no token, or took longer than its timeout.

    The message names only the failure's type; the original exception is kept on
    ``original`` for debugging and deliberately not chained (its text may hold credentials).
    """

    def __init__(self, message: str, *, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_exchange_error, (str(self),))


def _rebuild_exchange_error(message: str) -> TokenExchangeError:
    return TokenExchangeError(message)


class TokenSource:
    """Holds the current token for ``origins`` and re-exchanges it at most once per stale token.

    ``exchange`` is called with no arguments and returns the new token (or an awaitable of it).
    The header sent is ``header: scheme token`` (``scheme=""`` sends the bare token, e.g. for
    ``header="X-API-Key"``). ``timeout`` bounds each exchange and each wait for one.
    """

    def __init__(
        self,
        exchange: Exchange,
        *,
        origins: Iterable[str],
        header: str = "Authorization",
        scheme: str = "Bearer",
        timeout: float = 30.0,
        token: str | None = None,
    ) -> None:
        if isinstance(origins, str):
            origins = [origins]
        self._origins = frozenset(origin_of(origin) or origin for origin in origins)
        if not self._origins:
            raise ValueError("TokenSource.origins must name at least one origin")
        if timeout <= 0:
            raise ValueError(f"TokenSource.timeout must be > 0, got {timeout!r}")
        self._exchange = exchange
        self._is_async = inspect.iscoroutinefunction(exchange) or inspect.iscoroutinefunction(
            getattr(exchange, "__call__", None)  # noqa: B004 - async callable objects
        )
        self.header = header
        self.scheme = scheme
        self.timeout = timeout
        self._token = token
        #: Counts finished exchanges (successful or not), so waiters know one happened.
        self._epoch = 0
        self._last_error: str | None = None
        self._thread_lock = threading.Lock()
        self._async_lock: anyio.Lock | None = None
        self.exchanges = 0

    def __repr__(self) -> str:
        state = "set" if self._token is not None else "unset"
        return (
            f"TokenSource(origins={sorted(self._origins)!r}, header={self.header!r}, token={state})"
        )

    @property
    def origins(self) -> frozenset[str]:
        """The origins that receive the token."""
        return self._origins

    def applies_to(self, url: str) -> bool:
        """Whether a request to ``url`` should carry the token."""
        return origin_of(url) in self._origins

    def header_value(self, token: str) -> str:
        """The header value carrying ``token``."""
        return f"{self.scheme} {token}" if self.scheme else token

    # -- sync ----------------------------------------------------------------------------

    def get_sync(self) -> str:
        """The current token, exchanging for the first one if there is none yet."""
        token = self._token
        return token if token is not None else self.refresh_sync(None)

    def refresh_sync(self, stale: str | None) -> str:
        """A token newer than ``stale``: exchanges once, or joins the exchange under way."""
        epoch = self._epoch
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise TokenExchangeError("timed out waiting for the token exchange")
        try:
            shared = self._joined(epoch, stale)
            if shared is not None:
                return shared
            return self._finish(self._run_sync())
        finally:
            self._thread_lock.release()

    def _run_sync(self) -> str | BaseException:
        if self._is_async:
            try:
                return anyio.run(self._bounded_async_exchange)
            except BaseException as exc:
                return exc
        # Run it on a helper thread so a hung exchange cannot hang this one past the timeout.
        future: Future[str] = Future()

        def work() -> None:
            try:
                future.set_result(self._call_sync_exchange())
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=work, name="forbear-token-exchange", daemon=True).start()
        try:
            return future.result(timeout=self.timeout)
        except (TimeoutError, FutureTimeoutError):
            # (Distinct classes before Python 3.11.)
            return TimeoutError()
        except BaseException as exc:
            return exc

    # -- async ---------------------------------------------------------------------------

    async def get_async(self) -> str:
        """The current token, exchanging for the first one if there is none yet."""
        token = self._token
        return token if token is not None else await self.refresh_async(None)

    async def refresh_async(self, stale: str | None) -> str:
        """A token newer than ``stale``: exchanges once, or joins the exchange under way."""
        epoch = self._epoch
        if self._async_lock is None:
            self._async_lock = anyio.Lock()
        try:
            with anyio.fail_after(self.timeout):
                await self._async_lock.acquire()
        except TimeoutError:
            raise TokenExchangeError("timed out waiting for the token exchange") from None
        try:
            shared = self._joined(epoch, stale)
            if shared is not None:
                return shared
            result: str | BaseException
            try:
                with anyio.fail_after(self.timeout):
                    if self._is_async:
                        result = await self._call_async_exchange()
                    else:
                        result = await anyio.to_thread.run_sync(
                            self._call_sync_exchange, abandon_on_cancel=True
                        )
            except Exception as exc:
                result = exc
            return self._finish(result)
        finally:
            self._async_lock.release()

    def _call_sync_exchange(self) -> str:
        value = self._exchange()
        if not isinstance(value, str):
            raise TypeError("a sync exchange returned a non-string")
        return value

    async def _bounded_async_exchange(self) -> str:
        with anyio.fail_after(self.timeout):
            return await self._call_async_exchange()

    async def _call_async_exchange(self) -> str:
        value = self._exchange()
        if inspect.isawaitable(value):
            value = await value
        return value

    # -- shared --------------------------------------------------------------------------

    def _joined(self, epoch: int, stale: str | None) -> str | None:
        """The outcome of an exchange that finished while we waited, if any."""
        if self._epoch != epoch:
            if self._last_error is not None:
                raise TokenExchangeError(self._last_error)
            if self._token is not None:
                return self._token
        if self._token is not None and self._token != stale:
            return self._token
        return None

    def _finish(self, result: str | BaseException) -> str:
        self.exchanges += 1
        self._epoch += 1
        if isinstance(result, str) and result:
            self._token, self._last_error = result, None
            return result
        if isinstance(result, TimeoutError):
            message = f"token exchange took longer than {self.timeout:g}s"
        elif isinstance(result, BaseException):
            message = f"token exchange failed: {type(result).__name__}"
        else:
            message = f"token exchange returned {type(result).__name__}, not a token string"
        self._last_error = message
        original = result if isinstance(result, BaseException) else None
        raise TokenExchangeError(message, original=original)
