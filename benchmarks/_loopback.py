"""The loopback origin the per-client benchmarks share: a minimal uvicorn app in a child process.

It answers every request 200 ``ok`` as fast as uvicorn can, so what a benchmark measures is the
client and the retry layer, not the server.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

__all__ = ["SERVER_SCRIPT", "iqr", "ok_server"]

SERVER_SCRIPT = """
import sys, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
            access_log=False, lifespan="off")
"""


@contextlib.contextmanager
def ok_server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(port)])
    try:
        deadline = time.monotonic() + 20.0
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def iqr(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0])
    quartiles = statistics.quantiles(values, n=4)
    return (quartiles[0], quartiles[2])
