"""The README's example runs as written, against the fault server, and prints what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from forbear_testing import FaultServer, Reply

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_PRINTED = re.compile(r"^print\(.*\)\s+# (.*)$", re.MULTILINE)


def test_readme_example_runs_and_prints_what_it_says(fault_server: FaultServer) -> None:
    """The example's spans and events are the ones its comments promise."""
    [code] = _BLOCK.findall(README.read_text(encoding="utf-8"))
    fault_server.script("/flaky", [Reply(503), Reply(200)])
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(
            compile(code.replace("https://api.example.com", fault_server.url), "README", "exec"),
            {"__name__": "__readme__"},
        )
    assert output.getvalue().splitlines() == _PRINTED.findall(code)
    assert [a.status for a in fault_server.arrivals("/flaky")] == [503, 200]
