"""forbear next to bare clients and peer retry libraries: every scenario, one run.

``python -m benchmarks.run`` (what ``make bench`` runs, after installing the ``bench`` group)
starts the loopback servers, runs the scenarios and writes ``benchmarks/results/<time>.json``,
``benchmarks/results/latest.md`` and ``benchmarks/results/latest.png``:

1. happy path: µs each layer adds in-process; req/s vs the bare client on loopback;
2. rate-limited crawl: wall / ideal, 429s per success, requests lost;
3. outage (always 503): arrivals per logical request, with and without forbear's budget;
4. token expiry: successes and token exchanges;
5. decision core: `forbear.decide` per call.

``--only announced`` runs one more, not part of a default run: forbear's adapters crawling a
token bucket that announces its state, once per rate-limit dialect
(`benchmarks.scenarios.announced`); it prints its table and writes it in the run's JSON.

Servers: nginx from the system packages when installed (the happy path's origin and the
crawl's ``limit_req`` limiter), else `forbear.testing`'s limiter and a uvicorn app; the fault
server (in a child process) for the outage and the token expiry. 127.0.0.1 only.

``--smoke`` (what ``make bench-smoke`` and so ``make test`` run) runs every scenario at a tiny
size, with whatever peers are installed (the others are reported as skipped) and without
nginx, writes nothing, and checks only that each scenario completes with numbers in it. It
never judges a speed. ``--only crawl,token`` runs some scenarios; ``--no-nginx`` ignores an
installed nginx; ``--report RUN.json`` renders the Markdown and the chart of a stored run again.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import _report
from benchmarks._servers import FaultProcess, Limiter, Nginx, happy_origin, nginx_binary
from benchmarks.peers import CANDIDATES, CONFIGURED, DISTRIBUTIONS, version
from benchmarks.scenarios import announced, crawl, decide, happy, outage, token

SCENARIOS = ("happy", "crawl", "outage", "token", "decide")
#: Scenarios run only when named with ``--only``.
EXTRA = ("announced",)
RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent / "README.md"
#: The part of `README` a full run rewrites with its report.
MARKERS = ("<!-- latest-results:start -->", "<!-- latest-results:end -->")

#: Sizes of a full run (a few minutes on a 2-CPU machine) and of a smoke run (seconds).
FULL: dict[str, dict[str, Any]] = {
    "happy": {"micro_rounds": 15, "micro_n": 3_000, "rounds": 11, "n": 200},
    "crawl": {
        "urls": 2000,
        "concurrency": 50,
        "rate": 400.0,
        "burst": 20,
        "repeats": 1,
        "time_limit": 40.0,
    },
    "outage": {"requests": 200, "concurrency": 20, "repeats": 3, "time_limit": 60.0},
    "token": {"requests": 100, "repeats": 3, "time_limit": 60.0},
    "decide": {"number": 50_000, "repeat": 7},
    "announced": {
        "urls": 1000,
        "concurrency": 50,
        "rate": 200.0,
        "burst": 10,
        "time_limit": 20.0,
    },
}
SMOKE: dict[str, dict[str, Any]] = {
    "happy": {"micro_rounds": 2, "micro_n": 200, "rounds": 2, "n": 32, "settle": 0.0},
    "crawl": {
        "urls": 30,
        "concurrency": 10,
        "rate": 400.0,
        "burst": 20,
        "repeats": 1,
        "time_limit": 20.0,
    },
    "outage": {"requests": 10, "concurrency": 5, "repeats": 1, "time_limit": 20.0},
    "token": {"requests": 10, "repeats": 1, "time_limit": 20.0},
    "decide": {"number": 200, "repeat": 3},
    "announced": {"urls": 20, "concurrency": 5, "rate": 400.0, "burst": 20, "time_limit": 20.0},
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the run ran on."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load": " ".join(f"{value:.2f}" for value in load),
    }


def _check_numbers(name: str, value: Any) -> None:
    """Every number in a scenario's results is a real number (smoke's only check)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(f"{name}.{key}", item)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_numbers(f"{name}[{index}]", item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise AssertionError(f"{name} is not a number: {value!r}")


def _rows_of(data: dict[str, Any]) -> list[Any]:
    return list(data.get("rows") or data.get("cases") or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; check numbers appear")
    parser.add_argument(
        "--only", help="comma-separated scenarios: " + ",".join((*SCENARIOS, *EXTRA))
    )
    parser.add_argument("--no-nginx", action="store_true", help="use the fallback servers")
    parser.add_argument("--out", type=Path, help=f"where to write results (default {RESULTS})")
    parser.add_argument(
        "--crawl-repeats",
        type=int,
        help="crawl every client this many times, interleaved (default 1: the slow peers "
        "take up to the crawl's 40 s limit each)",
    )
    parser.add_argument(
        "--report", type=Path, metavar="RUN.json", help="only render a stored run's report again"
    )
    args = parser.parse_args(argv)
    if args.report:
        return _render(args.report, args.out)
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = set(chosen) - set(SCENARIOS) - set(EXTRA)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    sizes = {name: dict(size) for name, size in (SMOKE if args.smoke else FULL).items()}
    if args.crawl_repeats:
        sizes["crawl"]["repeats"] = args.crawl_repeats
    binary = None if (args.smoke or args.no_nginx) else nginx_binary()

    installed = [c for c in CANDIDATES if c.installed]
    skipped = sorted({c.library for c in CANDIDATES if not c.installed})
    started = datetime.datetime.now(datetime.timezone.utc)
    command = "python -m benchmarks.run" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    print(f"{command}: {', '.join(chosen)}")
    if skipped:
        print(f"skipped, not installed: {', '.join(skipped)}")
    if args.smoke:
        print("smoke: tiny sizes, fallback servers; numbers are not speeds")
    elif binary is None:
        print("nginx not found: the crawl uses forbear.testing's limiter, the happy path uvicorn")
    results: dict[str, Any] = {
        "command": command,
        "smoke": args.smoke,
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {name: version(name) for name in DISTRIBUTIONS},
        "skipped": skipped,
        "configured": CONFIGURED,
        "sizes": {name: sizes[name] for name in chosen},
        "scenarios": {},
    }
    clock = time.perf_counter()
    crawl_sizes = sizes["crawl"]
    nginx = Nginx(binary, rate=crawl_sizes["rate"], burst=crawl_sizes["burst"]) if binary else None
    with FaultProcess() as faults:
        if nginx is not None:
            nginx.__enter__()
            results["versions"]["nginx"] = nginx.version
        try:
            runners: dict[str, Callable[[], dict[str, Any]]] = {
                "happy": lambda: _happy(nginx, sizes["happy"]),
                "crawl": lambda: _crawl(installed, nginx, faults, crawl_sizes),
                "outage": lambda: outage.run(installed, faults, **sizes["outage"]),
                "token": lambda: token.run(
                    [c for c in installed if c.reauth or not (c.library == "forbear" or c.bare)],
                    faults,
                    **sizes["token"],
                ),
                "decide": lambda: decide.run(**sizes["decide"]),
                "announced": lambda: _announced(installed, sizes["announced"]),
            }
            for name in chosen:
                print(f"[{name}]")
                began = time.perf_counter()
                data = runners[name]()
                data["duration_s"] = time.perf_counter() - began
                _check_numbers(name, data)
                if not _rows_of(data):
                    raise AssertionError(f"{name}: no figures")
                results["scenarios"][name] = data
        finally:
            if nginx is not None:
                nginx.__exit__(None, None, None)
    results["duration_s"] = time.perf_counter() - clock
    results["goals"] = _report.goals(results)
    report = _report.markdown(results)

    if args.smoke and args.out is None:
        with tempfile.TemporaryDirectory() as scratch:
            _write(results, report, Path(scratch), quiet=True)
        print(f"smoke: every scenario completed in {results['duration_s']:.1f} s")
        return 0
    out = args.out or RESULTS
    _write(results, report, out, quiet=False)
    if out == RESULTS and chosen == list(SCENARIOS):
        _refresh_readme(report)
    print()
    print(report)
    return 0


def _happy(nginx: Nginx | None, sizes: dict[str, Any]) -> dict[str, Any]:
    with happy_origin(nginx) as (url, server):
        return happy.run(url, server, **sizes)


def _crawl(
    candidates: list[Any], nginx: Nginx | None, faults: FaultProcess, sizes: dict[str, Any]
) -> dict[str, Any]:
    sizes = dict(sizes)
    limiter = Limiter(rate=sizes.pop("rate"), burst=sizes.pop("burst"), nginx=nginx, faults=faults)
    return crawl.run(candidates, limiter, **sizes)


def _announced(candidates: list[Any], sizes: dict[str, Any]) -> dict[str, Any]:
    with announced.AnnouncingServer() as server:
        data = announced.run(candidates, server, **sizes)
    print(announced.markdown(data))
    return data


def _write(results: dict[str, Any], report: str, out: Path, *, quiet: bool) -> None:
    """The JSON of the run, ``latest.md`` and, when matplotlib is installed, ``latest.png``."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = results["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
    json_path = out / f"{stamp}.json"
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (out / "latest.md").write_text(report)
    written = [json_path, out / "latest.md"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib not installed: no chart (pip install --group bench)")
    else:
        if not set(results["scenarios"]) <= set(EXTRA):  # the chart draws none of EXTRA
            _report.chart(results, out / "latest.png")
            written.append(out / "latest.png")
    for path in written:
        if not path.exists() or path.stat().st_size == 0:
            raise AssertionError(f"{path} was not written")
    if not quiet:
        print("wrote " + ", ".join(str(path) for path in written))


def _render(path: Path, out: Path | None) -> int:
    """``latest.md``, ``latest.png`` (and the README section) from a stored run's JSON."""
    results = json.loads(path.read_text())
    results["goals"] = _report.goals(results)
    report = _report.markdown(results)
    out = out or path.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(report)
    _report.chart(results, out / "latest.png")
    if out.resolve() == RESULTS and set(results["scenarios"]) == set(SCENARIOS):
        _refresh_readme(report)
    print(f"rendered {out / 'latest.md'} and {out / 'latest.png'} from {path}")
    return 0


def _refresh_readme(report: str) -> None:
    """Put the report (its title dropped, headings one level down) between the README markers."""
    if not README.exists():
        return
    text = README.read_text()
    start, end = MARKERS
    if start not in text or end not in text:
        return
    body = report.split("\n", 1)[1].strip()
    body = "\n".join("#" + line if line.startswith("## ") else line for line in body.splitlines())
    body += "\n\n![forbear vs peers: the latest run](results/latest.png)"
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    README.write_text(f"{head}{start}\n{body}\n{end}{tail}")
    print(f"updated {README}")


if __name__ == "__main__":
    sys.exit(main())
