"""forbear-tenacity: forbear's one retry loop inside tenacity.

``@forbear_tenacity.retry()`` decorates sync and async functions that return (or raise with)
an httpx, requests or aiohttp response; `Strategies` / `AsyncStrategies` give tenacity's
``retry``, ``wait``, ``stop`` and ``before`` for your own `tenacity.Retrying`. `headers` gives
the function the headers forbear adds to the attempt it is making (a token).
"""

from __future__ import annotations

from typing import Any

try:
    import tenacity  # noqa: F401
except ImportError as exc:  # pragma: no cover - tenacity is a dependency of this distribution
    raise ImportError(
        "forbear_tenacity needs tenacity: install it with `pip install forbear-tenacity`"
    ) from exc

from forbear.flow import attempt_headers as headers

from ._strategies import AsyncStrategies, Strategies, retry

__all__ = ["AsyncStrategies", "Strategies", "headers", "retry"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("forbear-tenacity")
    raise AttributeError(f"module 'forbear_tenacity' has no attribute {name!r}")
