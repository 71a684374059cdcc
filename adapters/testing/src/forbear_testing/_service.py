"""`Service`, the base of every servable app here, and `serve`, which runs one on loopback.

A service owns its state and a Starlette app wrapped in a `Recorder`. `serve` binds a socket to
127.0.0.1 on a free port, runs uvicorn on it in a background thread, waits until it accepts
connections (no fixed sleep) and, on exit, closes every connection and joins the thread, so a
test run under ``-W error::ResourceWarning`` sees nothing leak. Nothing here listens on any
address but loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import TypeVar

import uvicorn
from starlette.types import ASGIApp, Scope

from ._records import Arrival, Recorder

__all__ = ["HOST", "STOPPING", "Service", "serve_service", "stopping"]

#: The only address anything in `forbear_testing` listens on.
HOST = "127.0.0.1"

#: The key in the ASGI ``scope["state"]`` of the `asyncio.Event` set when the server stops.
STOPPING = "forbear.stopping"

#: Longest wait for a server thread to start or stop before the test is failed.
_THREAD_TIMEOUT = 10.0
#: How long in-flight answers may finish on shutdown before they are cancelled.
_SHUTDOWN_GRACE = 0.05


class Service:
    """An app with its own state that records every arrival; run it with `serve`.

    ``app`` is the ASGI app, usable in-process too (``httpx.ASGITransport(app=service.app)``).
    ``url`` is ``http://127.0.0.1:PORT`` while served. `reset` clears the arrivals and the
    subclass's state.
    """

    def __init__(self) -> None:
        self._recorder = Recorder()
        self._url: str | None = None
        self.app: ASGIApp = self._recorder.wrap(self._build())

    def _build(self) -> ASGIApp:
        raise NotImplementedError

    def _clear(self) -> None:
        """Subclasses reset their own state here."""

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` while served; RuntimeError otherwise."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} is not served: use `with serve(...)`")
        return self._url

    def arrivals(self, path: str | None = None) -> list[Arrival]:
        """Every request received so far, oldest first; only those to ``path`` when given."""
        return self._recorder.arrivals(path)

    def reset(self) -> None:
        """Forget every arrival and return to the state just after construction."""
        self._clear()
        self._recorder.clear()


_S = TypeVar("_S", bound=Service)


def stopping(scope: Scope) -> asyncio.Event | None:
    """The event set when the server running this request stops (None when run in-process)."""
    event = scope.get("state", {}).get(STOPPING)
    return event if isinstance(event, asyncio.Event) else None


@contextlib.contextmanager
def serve_service(service: _S) -> Iterator[_S]:
    """Serve ``service`` on 127.0.0.1 at a free port for the duration of the block."""
    if service._url is not None:
        raise RuntimeError(f"{type(service).__name__} is already served at {service._url}")
    runner = _Runner(service.app)
    runner.start()
    service._url = f"http://{HOST}:{runner.port}"
    try:
        yield service
    finally:
        service._url = None
        runner.stop()


class _Runner:
    """uvicorn in a thread, on a socket bound before it starts (so the port is known at once)."""

    def __init__(self, app: ASGIApp) -> None:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.bind((HOST, 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            http="h11",
            ws="none",
            loop="asyncio",
            proxy_headers=False,
        )
        self._server = uvicorn.Server(config)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"forbear-serve-{self.port}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(_THREAD_TIMEOUT):
            raise RuntimeError("the server thread did not start in time")
        if self._error is not None:
            self._thread.join(_THREAD_TIMEOUT)
            self._socket.close()
            raise RuntimeError("the server failed to start") from self._error

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(_THREAD_TIMEOUT)
        self._socket.close()
        if self._thread.is_alive():
            raise RuntimeError("the server thread did not stop in time")
        if self._error is not None:
            raise RuntimeError("the server thread failed") from self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = stop = asyncio.Event()
        server = self._server
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)  # "off": a no-op
        server.lifespan.state[STOPPING] = stop  # slow answers end early when this is set
        await server.startup(sockets=[self._socket])
        self._ready.set()
        tick = 0
        while not stop.is_set():
            await server.on_tick(tick)  # keeps the Date header current
            tick += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
        await self._shutdown()

    async def _shutdown(self) -> None:
        server = self._server
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close now
        tasks = list(server.server_state.tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()  # a slow answer (a long `delay`) must not hold the shutdown
            if pending:
                await asyncio.wait(pending)
        for connection in list(server.server_state.connections):
            connection.transport.abort()
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks run
        for listener in server.servers:
            await listener.wait_closed()
