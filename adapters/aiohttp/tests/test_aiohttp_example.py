"""The crawler example (``examples/crawl.py``) runs, small, against a rate-limited server."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from forbear_testing import FaultServer

EXAMPLE = Path(__file__).parents[1] / "examples" / "crawl.py"


def load_example() -> ModuleType:
    """The example script, imported as a module."""
    spec = importlib.util.spec_from_file_location("forbear_aiohttp_crawl_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


async def crawl_limited(server: FaultServer, **options: Any) -> tuple[Any, int]:
    """Crawl 100 pages with 20 tasks under a 100/s limit; the report and the 429s served."""
    server.reset()
    server.limit("/pages/", rate=100, burst=5, prefix=True)
    urls = [f"{server.url}/pages/{number}" for number in range(100)]
    report = await load_example().crawl(urls, tasks=20, **options)
    arrivals = server.arrivals()
    assert len(arrivals) == 100 + sum(report.retried.values())
    return report, sum(1 for arrival in arrivals if arrival.status == 429)


@pytest.mark.anyio
async def test_crawl_paces_every_task_through_the_shared_gate(fault_server: FaultServer) -> None:
    """100 URLs, 20 tasks, a 100/s limit: every page arrives, with half the 429s of no gate."""
    report, refused = await crawl_limited(fault_server)
    assert report.statuses == {200: 100}
    assert report.retried == ({429: refused} if refused else {})
    # Without the gate each task finds the limit by itself, again and again.
    _, refused_without_gate = await crawl_limited(fault_server, gate=None)
    assert refused * 2 <= refused_without_gate, (refused, refused_without_gate)


def test_crawl_script_runs_against_its_own_fault_server(capsys: pytest.CaptureFixture[str]) -> None:
    """``python examples/crawl.py`` serves a limited fault server, crawls it and reports."""
    report = load_example().main(["--urls", "40", "--tasks", "8", "--rate", "200"])
    assert report.statuses == {200: 40}
    assert "40 pages in" in capsys.readouterr().out
