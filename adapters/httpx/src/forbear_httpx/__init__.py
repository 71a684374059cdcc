"""forbear-httpx: `RetryTransport` for httpx, sync and async (asyncio and trio).

``httpx.Client(transport=RetryTransport())`` and ``httpx.AsyncClient(transport=RetryTransport())``
retry the way the server asks: the rules and the loop are forbear's core; this package only
speaks httpx.
"""

from __future__ import annotations

from typing import Any

try:
    import httpx  # noqa: F401
except ImportError as exc:  # pragma: no cover - httpx is a dependency of this distribution
    raise ImportError(
        "forbear_httpx needs httpx: install it with `pip install forbear-httpx`"
    ) from exc

from ._transport import RetryTransport

__all__ = ["RetryTransport"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("forbear-httpx")
    raise AttributeError(f"module 'forbear_httpx' has no attribute {name!r}")
