"""forbear-backoff: forbear's one retry loop inside the backoff library's decorators.

``@forbear_backoff.on_response()`` and ``@forbear_backoff.on_exception(...)`` decorate sync and
async functions that return (or raise with) an httpx, requests or aiohttp response; backoff
runs the loop and forbear's core says whether to retry and how long to wait. `headers` gives
the function the headers forbear adds to the attempt it is making (a token). `Pieces` holds
the wait generator and predicates underneath, for composing your own backoff decorators.
"""

from __future__ import annotations

from typing import Any

try:
    import backoff  # noqa: F401
except ImportError as exc:  # pragma: no cover - backoff is a dependency of this distribution
    raise ImportError(
        "forbear_backoff needs backoff: install it with `pip install forbear-backoff`"
    ) from exc

from forbear.flow import attempt_headers as headers

from ._decorators import DECISION_KEY, on_exception, on_response
from ._pieces import Pieces

__all__ = [
    "DECISION_KEY",
    "Pieces",
    "headers",
    "on_exception",
    "on_response",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("forbear-backoff")
    raise AttributeError(f"module 'forbear_backoff' has no attribute {name!r}")
