"""Every adapter has one constructor shape, and the decorator plugins one option set.

The names, their kinds (positional ``inner``, the rest keyword-only) and their defaults are
held equal here, so an adapter cannot drift from the others unnoticed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import forbear_backoff
import forbear_tenacity
import pytest
from forbear_aiohttp import RetryMiddleware
from forbear_httpx import RetryTransport
from forbear_requests import RetryAdapter

#: (name, kind, default) of every transport adapter's constructor, after ``self``.
ADAPTER_SHAPE = [
    ("inner", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
    ("policy", inspect.Parameter.KEYWORD_ONLY, None),
    ("token", inspect.Parameter.KEYWORD_ONLY, None),
    ("gate", inspect.Parameter.KEYWORD_ONLY, ...),
    ("budget", inspect.Parameter.KEYWORD_ONLY, ...),
    ("idempotency_keys", inspect.Parameter.KEYWORD_ONLY, False),
    ("request_ids", inspect.Parameter.KEYWORD_ONLY, False),
    ("on_event", inspect.Parameter.KEYWORD_ONLY, None),
]

#: The options the decorator plugins share, keyword-only, before the library's own.
PLUGIN_SHAPE = [
    ("policy", None),
    ("method", None),
    ("token", None),
    ("gate", ...),
    ("budget", ...),
    ("on_event", None),
    ("origin", None),
]


def shape(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    parameters = list(inspect.signature(function).parameters.values())
    return [(p.name, p.kind, p.default) for p in parameters if p.name != "self"]


@pytest.mark.parametrize("adapter", [RetryTransport, RetryAdapter, RetryMiddleware])
def test_every_adapter_has_the_one_constructor_shape(adapter: type) -> None:
    """``(inner=None, *, policy, token, gate=..., budget=..., idempotency_keys, ...)``."""
    assert shape(adapter.__init__) == ADAPTER_SHAPE


@pytest.mark.parametrize(
    "decorator",
    [forbear_backoff.on_response, forbear_backoff.on_exception, forbear_tenacity.retry],
)
def test_every_decorator_plugin_takes_the_same_options(decorator: Callable[..., Any]) -> None:
    """backoff's and tenacity's decorators share forbear's options, keyword-only, in order."""
    options = [
        (name, default)
        for name, kind, default in shape(decorator)
        if kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert options == PLUGIN_SHAPE


@pytest.mark.parametrize("adapter", [RetryTransport, RetryAdapter, RetryMiddleware])
@pytest.mark.parametrize("bad", [True, False])
def test_no_adapter_takes_a_bool_for_the_gate_or_budget(adapter: type, bad: bool) -> None:
    """``gate`` and ``budget`` take an object or None: a bool is refused, never guessed at."""
    with pytest.raises(TypeError, match="gate must be"):
        adapter(gate=bad)
    with pytest.raises(TypeError, match="budget must be"):
        adapter(budget=bad)
