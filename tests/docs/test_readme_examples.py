"""Every Python example in the README runs, against the fault server.

Examples name ``https://api.example.com``; the test points that at a `forbear.testing` server on
127.0.0.1 before running them, so nothing leaves loopback and the examples cannot rot.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from forbear_testing import FaultServer

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = "https://api.example.com"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_REMOTE = re.compile(r"https?://(?!127\.0\.0\.1)[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def blocks(path: Path) -> list[tuple[str, str]]:
    """(id, code) for each runnable Python block of ``path``."""
    found = []
    for number, match in enumerate(_BLOCK.finditer(path.read_text(encoding="utf-8")), 1):
        code = match.group(1)
        # Fragments (a signature, a lone line with `...`) are illustrations, not programs.
        if "..." in code or not re.search(r"^(import|from) ", code, re.MULTILINE):
            continue
        found.append((f"{path.relative_to(ROOT)}#{number}", code))
    return found


README_BLOCKS = blocks(ROOT / "README.md")


def prepare(server: FaultServer) -> None:
    """The answers the examples expect: a token endpoint and a token-protected path."""
    server.token_endpoint("/oauth/token")
    server.require_token("/v1/me")


@pytest.mark.parametrize(("name", "code"), README_BLOCKS, ids=[n for n, _ in README_BLOCKS])
def test_readme_example_runs(name: str, code: str, fault_server: FaultServer) -> None:
    """The README example runs as written, against loopback only."""
    prepare(fault_server)
    runnable = code.replace(PLACEHOLDER, fault_server.url)
    assert not _REMOTE.search(runnable), f"{name} talks to a non-loopback address"
    exec(compile(runnable, name, "exec"), {"__name__": "__readme__"})
    if PLACEHOLDER in code:
        assert fault_server.arrivals(), f"{name} sent nothing"


def test_readme_has_the_examples_the_issue_asks_for() -> None:
    """There is an example for each adapter and for tokens, keys, the gate and profiles."""
    text = "\n".join(code for _, code in README_BLOCKS)
    for needle in (
        "httpx.Client(transport=RetryTransport",
        "httpx.AsyncClient(transport=RetryTransport",
        "RetryAdapter()",
        "RetryMiddleware()",
        "forbear_backoff.on_response",
        "TokenSource(",
        "idempotency_keys=True",
        "HostGate(",
        "RetryBudget(",
        "profiles.sarucci",
        "from forbear_testing import",
    ):
        assert needle in text, needle


def test_quick_start_is_two_commands() -> None:
    """The README's quick start is `make demo` and `make test`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make \w+", quick, re.MULTILINE)
    assert commands == ["make demo", "make test"]
