"""Every test starts with a fresh process scope: the default gate and budget are per process,
and a test run is many short "processes" that must not pace each other's origins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from forbear import _contract


@pytest.fixture(autouse=True)
def _fresh_process_scope() -> Iterator[None]:
    _contract._PROCESS.clear()
    yield
    _contract._PROCESS.clear()
