"""forbear_redis: a fleet of processes sharing one gate, one retry budget and one token.

``Fleet(url, namespace=...)`` gives ``.gate`` and ``.budget``, accepted by every forbear
adapter wherever the process's own are, and ``.token(exchange, origins=...)``, a
`forbear.TokenSource` whose token and exchange the fleet shares. Reservations are atomic Lua
scripts on the Redis server, timed by its clock; what can wait is counted locally and flushed
on an interval; when Redis is slow or down, each process carries on with its own scope.
"""

from __future__ import annotations

from typing import Any

from ._budget import FleetBudget
from ._fleet import Fleet
from ._gate import FleetGate, Pacing

__all__ = ["Fleet", "FleetBudget", "FleetGate", "Pacing"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("forbear-redis")
    raise AttributeError(f"module 'forbear_redis' has no attribute {name!r}")
