"""forbear-requests: `RetryAdapter`, a requests transport adapter that retries.

``session.mount("https://", RetryAdapter())`` retries the way the server asks: the rules are
forbear's core, this package only speaks requests.
"""

from __future__ import annotations

from typing import Any

try:
    import requests  # noqa: F401
except ImportError as exc:  # pragma: no cover - requests is a dependency of this distribution
    raise ImportError(
        "forbear_requests needs requests: install it with `pip install forbear-requests`"
    ) from exc


from ._adapter import RetryAdapter

__all__ = ["RetryAdapter"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("forbear-requests")
    raise AttributeError(f"module 'forbear_requests' has no attribute {name!r}")
