"""What the per-client benchmarks share: a loopback origin, the result row, table and command.

It answers every request 200 ``ok`` as fast as uvicorn can, so what a benchmark measures is the
client and the retry layer, not the server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

__all__ = ["SERVER_SCRIPT", "Row", "iqr", "main", "ok_server", "table"]

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


@dataclass
class Row:
    """One line of the result table."""

    name: str
    bare: float
    forbear: float
    unit: str
    #: forbear's extra cost: microseconds (in-process) or percent slower (end-to-end).
    overhead: float
    spread: tuple[float, float]


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table."""
    width = max([32, *(len(row.name) for row in rows)])
    lines = [
        f"{'benchmark':{width}} {'bare':>10} {'forbear':>10} {'unit':>7}  overhead (IQR)",
        "-" * (width + 52),
    ]
    for row in rows:
        low, high = row.spread
        if row.unit == "µs/req":
            overhead = f"+{row.overhead:.2f} µs/req ({low:.2f} .. {high:.2f})"
            values = f"{row.bare:10.2f} {row.forbear:10.2f}"
        else:
            overhead = f"{row.overhead:+.1f} % slower ({low:+.1f} .. {high:+.1f})"
            values = f"{row.bare:10.0f} {row.forbear:10.0f}"
        lines.append(f"{row.name:{width}} {values} {row.unit:>7}  {overhead}")
    return "\n".join(lines)


def main(
    description: str | None, argv: list[str] | None, measure: Callable[[bool], list[Row]]
) -> None:
    """The command every per-client benchmark runs: ``--smoke`` and ``--json PATH``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; check numbers appear")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    rows = measure(args.smoke)
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([asdict(row) for row in rows], out, indent=2)
    assert rows and all(row.bare > 0 and row.forbear > 0 for row in rows), "no figures measured"
