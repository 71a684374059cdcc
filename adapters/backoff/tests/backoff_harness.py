"""The forbear-backoff test harness: one decorated function per client library, sync and async.

A `Client` makes one request through a function decorated with `forbear_backoff.on_response`
or `forbear_backoff.on_exception`, written the way a user would write it for that library,
and reports what the decorated call finally gave: a status, or the exception it raised.
Async functions run on asyncio (backoff's async loop sleeps with ``asyncio.sleep``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import httpx
import requests

import forbear_backoff
from forbear import Backoff, Policy

#: Tiny backoff so retries cost milliseconds; server-named waits are still waited in full.
FAST = Policy(backoff=Backoff(initial=0.01, max=0.05))

CLIENTS = ("httpx", "requests", "httpx-async", "aiohttp")
MODES = ("on_response", "on_exception")


class Client:
    """One client library, sync or async, behind a decorated function making one request."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: Calls of the decorated function's body in the latest `call`.
        self.calls = 0
        #: Responses the function returned, oldest first (closed or released by the harness).
        self.responses: list[Any] = []

    def __repr__(self) -> str:
        return f"Client({self.name})"

    @property
    def is_async(self) -> bool:
        return self.name in ("httpx-async", "aiohttp")

    @property
    def errors(self) -> type[Exception]:
        """The library's base exception: what ``on_exception`` is told to catch."""
        return {
            "httpx": httpx.HTTPError,
            "httpx-async": httpx.HTTPError,
            "requests": requests.RequestException,
            "aiohttp": aiohttp.ClientError,
        }[self.name]

    @property
    def status_error(self) -> type[Exception]:
        """The exception ``raise_for_status()`` raises."""
        return {
            "httpx": httpx.HTTPStatusError,
            "httpx-async": httpx.HTTPStatusError,
            "requests": requests.HTTPError,
            "aiohttp": aiohttp.ClientResponseError,
        }[self.name]

    @staticmethod
    def status(result: Any) -> int:
        """The status of a `call` result: a status, or a status error's response status."""
        if isinstance(result, int):
            return result
        if isinstance(result, aiohttp.ClientResponseError):
            return result.status
        return int(result.response.status_code)

    def call(
        self,
        mode: str,
        method: str,
        url: str,
        /,
        *,
        policy: Policy | None = FAST,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        **options: Any,
    ) -> Any:
        """Call a function decorated with ``forbear_backoff.<mode>``; its status or exception.

        In ``on_exception`` mode the function calls ``raise_for_status()`` (and reads the body,
        as httpx and requests do by themselves) and the library's exceptions are caught by the
        decorator; whatever the decorated function finally raises is returned here.
        """
        if mode == "on_response":
            decorate = forbear_backoff.on_response(policy=policy, **options)
        else:
            decorate = forbear_backoff.on_exception(self.errors, policy=policy, **options)
        raising = mode == "on_exception"
        self.calls = 0
        self.responses = []
        try:
            if self.is_async:
                return asyncio.run(
                    self._run_async(decorate, method, url, headers, timeout, raising)
                )
            return self._run(decorate, method, url, headers, timeout, raising)
        except self.errors as exc:
            return exc

    def _run(
        self,
        decorate: Callable[[Any], Any],
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        timeout: float,
        raising: bool,
    ) -> int:
        if self.name == "httpx":
            with httpx.Client(timeout=timeout) as client:

                @decorate
                def fetch_httpx() -> httpx.Response:
                    self.calls += 1
                    response = client.request(method, url, headers=headers)
                    self.responses.append(response)
                    if raising:
                        response.raise_for_status()
                    return response

                return fetch_httpx().status_code

        with requests.Session() as session:

            @decorate
            def fetch_requests() -> requests.Response:
                self.calls += 1
                response = session.request(method, url, headers=headers, timeout=timeout)
                self.responses.append(response)
                if raising:
                    response.raise_for_status()
                return response

            return int(fetch_requests().status_code)

    async def _run_async(
        self,
        decorate: Callable[[Any], Any],
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        timeout: float,
        raising: bool,
    ) -> int:
        if self.name == "httpx-async":
            async with httpx.AsyncClient(timeout=timeout) as client:

                @decorate
                async def fetch_httpx() -> httpx.Response:
                    self.calls += 1
                    response = await client.request(method, url, headers=headers)
                    self.responses.append(response)
                    if raising:
                        response.raise_for_status()
                    return response

                return (await fetch_httpx()).status_code

        limits = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        async with aiohttp.ClientSession(timeout=limits) as session:

            @decorate
            async def fetch_aiohttp() -> aiohttp.ClientResponse:
                self.calls += 1
                # Not `async with`: the decorator must release the responses it discards.
                response = await session.request(method, url, headers=headers)
                self.responses.append(response)
                if raising:
                    response.raise_for_status()
                    await response.read()
                return response

            response = await fetch_aiohttp()
            response.release()
            return response.status
