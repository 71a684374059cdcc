"""`forbear explain`: the decision for one response, in words."""

from __future__ import annotations

import subprocess
import sys

import pytest

from forbear import Action
from forbear.__main__ import main
from forbear._explain import explain, parse_header_args

CASES = [
    (
        ["429", "-H", "Retry-After: 30", "--attempt", "2"],
        "RETRY in 30.0 s: the server asked for Retry-After: 30 (attempt 2 of 5)",
    ),
    (
        ["503"],
        "RETRY in 0.2 s: exponential backoff (full jitter) since the server named no wait",
    ),
    (["503", "--method", "POST"], "RETURN: POST is not idempotent and may have reached the server"),
    (["503", "--method", "POST", "-H", "Idempotency-Key: k1"], "RETRY in"),
    (["429", "--method", "POST"], "RETRY in"),
    (["connect", "--method", "POST"], "RETRY in"),
    (["read_timeout", "--method", "POST"], "RETURN: POST is not idempotent"),
    (
        ["429", "-H", "Retry-After: 99999999"],
        "GIVE UP: the server asked for 99999999 s, more than max_wait (60 s)",
    ),
    (["503", "--attempt", "5"], "GIVE UP: no attempts left (attempt 5 of 5)"),
    (["401", "--token"], "REAUTH: exchange the token"),
    (["401"], "RETURN: 401 is not retried"),
    (["404"], "RETURN: 404 is not retried; fix the request instead"),
    (["200"], "RETURN: a success"),
    (
        ["500", "--profile", "sarucci", "--attempt", "3"],
        "RETRY in 2.0 s: exponential backoff (none jitter) since the server named no wait",
    ),
    (["503", "--profile", "partner_api"], "RETURN: 503 is not retried"),
    (
        ["429", "-H", "RateLimit: limit=100, remaining=0, reset=12"],
        "RETRY in 12.0 s: the server's rate-limit window resets then",
    ),
    (["429", "-H", "Retry-After: soon"], "RETRY in"),
]


@pytest.mark.parametrize(("argv", "words"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_explain_words(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each input is explained with the expected words."""
    assert main(["explain", *argv]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(words), out


def test_garbage_retry_after_falls_back_to_backoff() -> None:
    """A garbage Retry-After is explained as backoff, not as the server's wait."""
    decision, words = explain("429", headers={"Retry-After": "soon"})
    assert decision.reason == "backoff"
    assert "exponential backoff" in words


def test_explain_is_repeatable() -> None:
    """The same question always gets the same answer (seeded jitter, fixed clocks)."""
    assert explain("503", attempt=3) == explain("503", attempt=3)
    decision, _ = explain("429", headers={"Retry-After": "7"})
    assert (decision.action, decision.wait) == (Action.RETRY, 7.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "teapot"],
        ["explain", "503", "-H", "no colon"],
        ["explain", "503", "--attempt", "0"],
    ],
)
def test_bad_input_is_a_clear_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad input exits 2 with a message naming the problem."""
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("forbear explain: ")


def test_header_args_parse() -> None:
    """`-H 'Name: value'` pairs become a dict, whitespace trimmed."""
    assert parse_header_args(["Retry-After:  5 ", "X-A: b:c"]) == {"Retry-After": "5", "X-A": "b:c"}


def test_python_dash_m_runs_the_command() -> None:
    """`python -m forbear explain` works as the console script does."""
    done = subprocess.run(
        [sys.executable, "-m", "forbear", "explain", "429", "-H", "Retry-After: 3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("RETRY in 3.0 s")


def test_the_core_command_points_to_the_demo() -> None:
    """`forbear demo` (the core's command has `explain` only) says where the demo went."""
    done = subprocess.run(
        [sys.executable, "-m", "forbear", "demo"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        'forbear: the demo is the forbear-demo command: pip install "forbear-testing[demo]"'
    ]
