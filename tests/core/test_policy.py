"""`Policy` and `Backoff`: the named defaults, coercion, freezing and validation.

Only configuration raises, and it raises `ValueError` naming the offending field.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from forbear import Backoff, ErrorKind, Jitter, Policy
from forbear.rules import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_REAUTHS,
    DEFAULT_MAX_WAIT,
    DEFAULT_RETRY_AFTER_JITTER,
    DEFAULT_RETRY_STATUSES,
    IDEMPOTENT_METHODS,
    NEVER_SENT_ERRORS,
)


def test_named_defaults() -> None:
    """The defaults are the seeds' common ground: 5 attempts, 429/5xx, 60 s, one re-exchange."""
    assert DEFAULT_MAX_ATTEMPTS == 5
    assert DEFAULT_MAX_REAUTHS == 1
    assert DEFAULT_MAX_WAIT == 60.0
    assert DEFAULT_RETRY_AFTER_JITTER == 0.1
    assert frozenset({429, 500, 502, 503, 504}) == DEFAULT_RETRY_STATUSES
    assert frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) == IDEMPOTENT_METHODS
    assert frozenset({ErrorKind.CONNECT, ErrorKind.CONNECT_TIMEOUT}) == NEVER_SENT_ERRORS


def test_policy_defaults_use_the_named_constants() -> None:
    """`Policy()` is built from the named defaults, with 0.25 s doubling to 10 s, full jitter."""
    policy = Policy()
    assert policy.max_attempts == DEFAULT_MAX_ATTEMPTS
    assert policy.max_reauths == DEFAULT_MAX_REAUTHS
    assert policy.max_wait == DEFAULT_MAX_WAIT
    assert policy.retry_after_jitter == DEFAULT_RETRY_AFTER_JITTER
    assert policy.retry_statuses == DEFAULT_RETRY_STATUSES
    assert policy.idempotent_methods == IDEMPOTENT_METHODS
    assert policy.deadline is None
    assert policy.rate_limit_headers is True
    assert policy.backoff == Backoff(initial=0.25, multiplier=2.0, max=10.0, jitter=Jitter.FULL)


def test_policy_is_frozen_and_hashable() -> None:
    """A policy cannot be changed after construction, and equal policies hash alike."""
    policy = Policy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 9  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.backoff.initial = 9.0  # type: ignore[misc]
    assert hash(Policy()) == hash(policy)
    assert {Policy(), Policy()} == {policy}


def test_collections_are_coerced_to_frozensets() -> None:
    """Lists and sets become frozensets; method names become upper-case."""
    policy = Policy(
        retry_statuses=[503, 503, 429],  # type: ignore[arg-type]
        idempotent_methods={"get", "Put"},  # type: ignore[arg-type]
    )
    assert policy.retry_statuses == frozenset({429, 503})
    assert isinstance(policy.retry_statuses, frozenset)
    assert policy.idempotent_methods == frozenset({"GET", "PUT"})
    assert isinstance(policy.idempotent_methods, frozenset)


@pytest.mark.parametrize("value", ["full", "equal", "decorrelated", "none"])
def test_jitter_accepts_its_value(value: str) -> None:
    """`Backoff.jitter` accepts a `Jitter` value string and stores the enum member."""
    backoff = Backoff(jitter=value)  # type: ignore[arg-type]
    assert backoff.jitter is Jitter(value)


def test_replace_revalidates() -> None:
    """`dataclasses.replace` goes through the same validation as construction."""
    assert dataclasses.replace(Policy(), max_attempts=3).max_attempts == 3
    with pytest.raises(ValueError, match="max_attempts"):
        dataclasses.replace(Policy(), max_attempts=0)
    with pytest.raises(ValueError, match=r"Backoff\.multiplier"):
        dataclasses.replace(Backoff(), multiplier=0.5)


def test_zero_waits_are_valid() -> None:
    """Zero waits, zero jitter and a zero deadline are valid configuration."""
    policy = Policy(
        backoff=Backoff(initial=0.0, max=0.0),
        max_wait=0.0,
        deadline=0.0,
        retry_after_jitter=0.0,
        max_reauths=0,
        retry_statuses=frozenset(),
        idempotent_methods=frozenset(),
    )
    assert policy.backoff.base(100) == 0.0


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("max_attempts", -1, "Policy.max_attempts"),
        ("max_attempts", 0, "Policy.max_attempts"),
        ("max_attempts", 1.5, "Policy.max_attempts"),
        ("max_attempts", "5", "Policy.max_attempts"),
        ("max_attempts", True, "Policy.max_attempts"),
        ("max_attempts", None, "Policy.max_attempts"),
        ("max_reauths", -1, "Policy.max_reauths"),
        ("max_reauths", 1.0, "Policy.max_reauths"),
        ("max_reauths", False, "Policy.max_reauths"),
        ("max_wait", -1.0, "Policy.max_wait"),
        ("max_wait", math.nan, "Policy.max_wait"),
        ("max_wait", math.inf, "Policy.max_wait"),
        ("max_wait", "60", "Policy.max_wait"),
        ("max_wait", True, "Policy.max_wait"),
        ("deadline", -0.5, "Policy.deadline"),
        ("deadline", math.nan, "Policy.deadline"),
        ("deadline", math.inf, "Policy.deadline"),
        ("retry_after_jitter", -0.1, "Policy.retry_after_jitter"),
        ("retry_after_jitter", 1.5, "Policy.retry_after_jitter"),
        ("retry_after_jitter", math.nan, "Policy.retry_after_jitter"),
        ("retry_statuses", frozenset({700}), "Policy.retry_statuses"),
        ("retry_statuses", frozenset({99}), "Policy.retry_statuses"),
        ("retry_statuses", frozenset({600}), "Policy.retry_statuses"),
        ("retry_statuses", frozenset({"429"}), "Policy.retry_statuses"),
        ("retry_statuses", frozenset({True}), "Policy.retry_statuses"),
        ("retry_statuses", frozenset({503.0}), "Policy.retry_statuses"),
        ("retry_statuses", "429", "Policy.retry_statuses"),
        ("idempotent_methods", "GET", "Policy.idempotent_methods"),
        ("backoff", {"initial": 1.0}, "Policy.backoff"),
        ("backoff", None, "Policy.backoff"),
    ],
)
def test_policy_validation_names_the_field(field: str, value: Any, named: str) -> None:
    """Bad configuration raises ValueError naming the field."""
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        Policy(**{field: value})


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"initial": -0.25}, "Backoff.initial"),
        ({"initial": math.nan}, "Backoff.initial"),
        ({"initial": math.inf}, "Backoff.initial"),
        ({"initial": "0.25"}, "Backoff.initial"),
        ({"multiplier": 0.5}, "Backoff.multiplier"),
        ({"multiplier": 0.0}, "Backoff.multiplier"),
        ({"multiplier": -2.0}, "Backoff.multiplier"),
        ({"multiplier": math.nan}, "Backoff.multiplier"),
        ({"multiplier": math.inf}, "Backoff.multiplier"),
        ({"max": -1.0}, "Backoff.max"),
        ({"max": math.nan}, "Backoff.max"),
        ({"max": math.inf}, "Backoff.max"),
        ({"initial": 5.0, "max": 1.0}, "Backoff.max"),
        ({"jitter": "bogus"}, "Backoff.jitter"),
        ({"jitter": "FULL"}, "Backoff.jitter"),
        ({"jitter": None}, "Backoff.jitter"),
    ],
)
def test_backoff_validation_names_the_field(kwargs: dict[str, Any], named: str) -> None:
    """A bad backoff raises ValueError naming the field."""
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        Backoff(**kwargs)


def test_jitter_error_lists_the_choices() -> None:
    """An unknown jitter's message lists the valid values."""
    with pytest.raises(ValueError, match="'full', 'equal', 'decorrelated', 'none'"):
        Backoff(jitter="random")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 5e-324, "max": 10.0},
        {"initial": 1e-300, "max": 1e300},
        {"initial": 1.0, "multiplier": 1e308, "max": 1e308},
        {"initial": 0.25, "multiplier": 1.0 + 2**-52, "max": 10.0},
    ],
)
def test_extreme_but_valid_backoffs_construct(kwargs: dict[str, Any]) -> None:
    """Tiny initials, huge multipliers and multipliers barely above 1 construct and stay capped."""
    backoff = Backoff(**kwargs)
    for attempt in (1, 2, 100, 10_000, 10**12):
        base = backoff.base(attempt)
        assert backoff.initial <= base <= backoff.max
