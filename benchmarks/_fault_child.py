"""A `forbear.testing.FaultServer` in its own process, scripted over stdin and stdout.

`benchmarks._servers.FaultProcess` starts this module with ``python -m``; it serves a fault
server on 127.0.0.1 at a free port (so the server never shares the clients' GIL), prints
``{"url": ...}`` and then answers one JSON command per line until stdin closes. Commands
mirror the fault server's API (``reset``, ``limit``, ``always``, ``require_token``,
``token_endpoint``, ``issue_token``, ``expire_tokens``; ``limit`` may name an ``announce``
dialect) plus ``counts``: the statuses answered
under a path prefix and the tokens issued, read from the arrivals log.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

from forbear_testing import FaultServer, Reply, serve


def _handle(server: FaultServer, command: dict[str, Any]) -> dict[str, Any]:
    op = command["op"]
    if op == "reset":
        server.reset()
    elif op == "limit":
        server.limit(
            command["path"],
            rate=command["rate"],
            burst=command["burst"],
            prefix=True,
            announce=command.get("announce"),
        )
    elif op == "always":
        server.always(command["path"], Reply(command["status"]))
    elif op == "require_token":
        server.require_token(command["path"], prefix=True)
    elif op == "token_endpoint":
        server.token_endpoint(command["path"])
    elif op == "issue_token":
        return {"token": server.issue_token()}
    elif op == "expire_tokens":
        server.expire_tokens()
    elif op == "counts":
        prefix = command["prefix"]
        statuses = Counter(
            str(arrival.status) for arrival in server.arrivals() if arrival.path.startswith(prefix)
        )
        return {"statuses": dict(statuses), "tokens_issued": server.tokens_issued}
    else:
        raise ValueError(f"unknown command {op!r}")
    return {}


def main() -> None:
    with serve() as server:
        print(json.dumps({"url": server.url}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                reply = _handle(server, json.loads(line))
            except Exception as exc:  # reported to the parent, which raises it
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
