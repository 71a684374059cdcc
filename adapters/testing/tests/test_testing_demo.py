"""`forbear-demo` end to end: the real emulators, every installed adapter, the bare client."""

from __future__ import annotations

import re
import subprocess
import sys

from forbear_testing._demo import Job, Tally, workload


def test_demo_loses_nothing_and_the_bare_client_does() -> None:
    """`forbear-demo --requests 200`: forbear loses nothing; the bare client loses some."""
    done = subprocess.run(
        [sys.executable, "-m", "forbear_testing._demo", "--requests", "200", "--plain"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = re.search(
        r"forbear lost (\d+) request\(s\); the bare client lost (\d+)\.", done.stdout
    )
    assert summary is not None, done.stdout
    assert int(summary[1]) == 0
    assert int(summary[2]) > 0
    rows = {
        line.split("  ")[0]: line.split()
        for line in done.stdout.splitlines()
        if line.startswith(("forbear ", "bare httpx"))
    }
    for name in ("forbear httpx async", "forbear aiohttp", "forbear requests"):
        cells = rows[name]
        numbers = [cell for cell in cells if cell.isdigit()]
        requests, ok, errors, lost, retries = (int(n) for n in numbers[:5])
        assert (requests, lost) == (200, 0)
        assert ok + errors == 200
        assert retries > 0
    assert "company_not_found (e.g. request_id " in done.stdout


def test_workload_is_seeded_and_mixes_the_three_apis() -> None:
    """The same seed gives the same jobs; every API and both documented failures appear."""
    jobs = workload(200, 3)
    assert jobs == workload(200, 3)
    assert jobs != workload(200, 4)
    assert {job.api for job in jobs} == {"partner", "policy", "sarucci"}
    assert {job.expect for job in jobs} == {200, 404, 410}


def test_tally_separates_documented_errors_from_lost_requests() -> None:
    """A documented error is handed back with its code; anything else that failed is lost."""
    tally = Tally("t")
    body = b'{"error": {"code": "company_not_found", "message": "x", "request_id": "r-1"}}'
    tally.record(Job("sarucci", "GET", "/x", expect=404), 404, {}, body)
    tally.record(Job("partner", "GET", "/y"), 200, {}, b"{}")
    tally.record(Job("partner", "GET", "/y"), 503, {}, b"")
    tally.record(Job("partner", "GET", "/y"), None, {}, b"")
    assert (tally.requests, tally.succeeded, tally.lost) == (4, 1, 2)
    assert tally.handed_back == {"404 company_not_found": 1}
    assert tally.examples == {"404 company_not_found": "r-1"}


def test_demo_without_adapters_says_what_to_install() -> None:
    """With no adapter installed, the demo answers with one line naming what to install."""
    code = (
        "import sys\n"
        "for name in ('forbear_httpx', 'forbear_aiohttp', 'forbear_requests'):\n"
        "    sys.modules[name] = None\n"
        "from forbear_testing._demo import main\n"
        "sys.exit(main(['--requests', '5', '--plain']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        'forbear demo: no forbear adapter is installed; pip install "forbear-testing[demo]"'
    ]
