"""forbear-aiohttp: `RetryMiddleware` for aiohttp client sessions.

``aiohttp.ClientSession(middlewares=[RetryMiddleware()])`` retries the way the server asks:
the rules are forbear's core, this package only speaks aiohttp.
"""

from __future__ import annotations

from typing import Any

try:
    import aiohttp  # noqa: F401
except ImportError as exc:  # pragma: no cover - aiohttp is a dependency of this distribution
    raise ImportError(
        "forbear_aiohttp needs aiohttp: install it with `pip install forbear-aiohttp`"
    ) from exc


from ._middleware import RetryMiddleware

__all__ = ["RetryMiddleware"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("forbear-aiohttp")
    raise AttributeError(f"module 'forbear_aiohttp' has no attribute {name!r}")
