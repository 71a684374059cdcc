"""The figures of one run as a Markdown report, a goal check and a PNG chart.

`goals` judges a run's results against issue 17's targets (met or missed, with the figure);
`markdown` renders the tables (`benchmarks/results/latest.md`); `chart` draws the PNG
(`benchmarks/results/latest.png`) with matplotlib, which only the ``bench`` group installs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Issue 17's targets. In-process: µs a transport adapter adds per first-attempt success.
MICRO_GOAL_US = 2.0
#: Loopback: percent slower than the bare client, per client family.
LOOPBACK_GOAL_PERCENT = {"httpx": 3.0, "requests": 3.0, "aiohttp": 5.0}
#: The crawl, for forbear-aiohttp and forbear-requests: wall / ideal and 429s (forbear-httpx:
#: no slower than the best httpx peer of the same run; every forbear row: none lost).
CRAWL_GOAL_RATIO = 1.05
CRAWL_GOAL_429S = 30
#: The outage: arrivals per logical request with the budget.
OUTAGE_GOAL_ARRIVALS = 1.3
#: forbear's transport adapters (the targets are theirs; the decorators are reported only).
TRANSPORTS = ("forbear-httpx", "forbear-aiohttp", "forbear-requests")


def _fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _is_forbear(row: dict[str, Any]) -> bool:
    return bool(row.get("library") == "forbear")


def _is_transport(name: str) -> bool:
    return name.startswith(TRANSPORTS)


def _peers(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    # (A happy-path row's "bare" is the bare client's figure; elsewhere it flags a bare row.)
    return [row for row in rows if not _is_forbear(row) and row.get("bare") is not True]


# -- goals ----------------------------------------------------------------------------------


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal with its figure, and whether it was met."""
    checks: list[dict[str, Any]] = []
    scenarios = results["scenarios"]
    if "happy" in scenarios:
        checks += _happy_goals(scenarios["happy"]["rows"])
    if "crawl" in scenarios:
        checks += _crawl_goals(scenarios["crawl"])
    if "outage" in scenarios:
        checks += _outage_goals(scenarios["outage"])
    if "token" in scenarios:
        checks += _token_goals(scenarios["token"])
    if "decide" in scenarios:
        data = scenarios["decide"]
        for case in data["cases"]:
            if case["targeted"]:
                checks.append(
                    {
                        "goal": f"decide, {case['name']}: < {data['target_us']:g} µs",
                        "figure": f"{case['us_per_decision']:.2f} µs",
                        "met": case["us_per_decision"] < data["target_us"],
                    }
                )
    return checks


def _happy_goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    checks = []
    for row in rows:
        if not (_is_forbear(row) and _is_transport(row["layer"])):
            continue
        where = f"{row['family']} {row['mode']}, {row['layer']}"
        if row["unit"] == "µs/req":
            checks.append(
                {
                    "goal": f"{where}: ≤ {MICRO_GOAL_US:g} µs added",
                    "figure": (
                        f"{row['overhead']:+.2f} µs (IQR {row['spread'][0]:.2f} .. "
                        f"{row['spread'][1]:.2f})"
                    ),
                    "met": row["overhead"] <= MICRO_GOAL_US,
                }
            )
        else:
            limit = LOOPBACK_GOAL_PERCENT[row["family"]]
            checks.append(
                {
                    "goal": f"{where}: ≤ {limit:g} % slower than bare",
                    "figure": (
                        f"{row['overhead']:+.1f} % (IQR {row['spread'][0]:+.1f} .. "
                        f"{row['spread'][1]:+.1f})"
                    ),
                    "met": row["overhead"] <= limit,
                }
            )
    return checks


def _floor(data: dict[str, Any], row: dict[str, Any]) -> float | None:
    floor = data.get("floors", {}).get(row.get("client"))
    return None if floor is None else float(floor["wall_over_ideal"])


def _crawl_goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    httpx_peers = [peer for peer in _peers(data["rows"]) if peer["client"] == "httpx"]
    for row in data["rows"]:
        if not _is_forbear(row):
            continue
        floor = _floor(data, row)
        ratio = f"{row['wall_over_ideal']:.2f}x" + (
            "" if floor is None else f" (the bare client, unlimited: {floor:.2f}x)"
        )
        if row["name"].startswith(("forbear-aiohttp", "forbear-requests")):
            checks.append(
                {
                    "goal": f"crawl, {row['name']}: ≤ {CRAWL_GOAL_RATIO:g}x ideal",
                    "figure": ratio,
                    "met": row["wall_over_ideal"] <= CRAWL_GOAL_RATIO,
                }
            )
            checks.append(
                {
                    "goal": f"crawl, {row['name']}: ≤ {CRAWL_GOAL_429S} 429s",
                    "figure": f"{row['rejections_429']:g}",
                    "met": row["rejections_429"] <= CRAWL_GOAL_429S,
                }
            )
        elif row["name"].startswith("forbear-httpx") and httpx_peers:
            # The best peer is the fastest that lost nothing (a peer that drops requests
            # finishes early by not finishing them); the fastest overall is named as well.
            complete = [peer for peer in httpx_peers if peer["lost_max"] == 0]
            best = min(complete or httpx_peers, key=lambda peer: peer["wall_over_ideal"])
            fastest = min(httpx_peers, key=lambda peer: peer["wall_over_ideal"])
            figure = f"{ratio}; best peer {best['name']} {best['wall_over_ideal']:.2f}x"
            if fastest is not best:
                figure += (
                    f" (faster but lost up to {fastest['lost_max']}: {fastest['name']} "
                    f"{fastest['wall_over_ideal']:.2f}x)"
                )
            checks.append(
                {
                    "goal": f"crawl, {row['name']}: no slower than the best httpx peer",
                    "figure": figure,
                    "met": row["wall_over_ideal"] <= best["wall_over_ideal"],
                }
            )
        checks.append(
            {
                "goal": f"crawl, {row['name']}: zero lost",
                "figure": f"{row['lost']:g} (max {row['lost_max']})"
                + (f", {row['unfinished_max']} not done" if row["unfinished_max"] else ""),
                "met": row["lost_max"] == 0 and row["unfinished_max"] == 0,
            }
        )
    return checks


def _outage_goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    rows = {row["name"]: row for row in data["rows"]}
    for name, row in rows.items():
        if not (_is_forbear(row) and row["budget"]):
            continue
        without = rows.get(name.replace(", budget", ", no budget"))
        if without is None:
            continue
        checks.append(
            {
                "goal": f"outage, {name}: ≤ {OUTAGE_GOAL_ARRIVALS:g} arrivals per request",
                "figure": (
                    f"{row['arrivals_per_request']:.2f} (worst "
                    f"{row['arrivals_per_request_range'][1]:.2f}) vs "
                    f"{without['arrivals_per_request']:.2f} without the budget"
                ),
                "met": row["arrivals_per_request_range"][1] <= OUTAGE_GOAL_ARRIVALS,
            }
        )
    return checks


def _token_goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for row in data["rows"]:
        if not row["reauth"]:
            continue
        checks.append(
            {
                "goal": f"token, {row['name']}: all {data['requests']} succeed, one exchange",
                "figure": (
                    f"{row['successes_min']}/{data['requests']} (worst run), "
                    f"{row['exchanges_max']} exchange(s) (most)"
                ),
                "met": row["successes_min"] == data["requests"] and row["exchanges_max"] == 1,
            }
        )
    return checks


# -- Markdown -------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The whole report: machine, command, one table per scenario, the goals."""
    machine = results["machine"]
    out = [
        "# forbear benchmarks: latest run",
        "",
        f"`{results['command']}` on {results['started']} (took {results['duration_s']:.0f} s).",
        "",
        f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['os']}, "
        f"Python {machine['python']}; load average {machine['load']} at the start. "
        "Shared with other jobs: expect a few percent of noise between rounds.",
        "",
        "Versions: "
        + ", ".join(f"{name} {ver}" for name, ver in results["versions"].items() if ver)
        + ".",
    ]
    skipped = results.get("skipped") or []
    if skipped:
        out += ["", "Skipped (not installed): " + ", ".join(skipped) + "."]
    scenarios = results["scenarios"]
    if "happy" in scenarios:
        out += ["", *_happy_markdown(scenarios["happy"])]
    if "crawl" in scenarios:
        out += ["", *_crawl_markdown(scenarios["crawl"])]
    if "outage" in scenarios:
        out += ["", *_outage_markdown(scenarios["outage"])]
    if "token" in scenarios:
        out += ["", *_token_markdown(scenarios["token"])]
    if "decide" in scenarios:
        out += ["", *_decide_markdown(scenarios["decide"])]
    checks = goals(results)
    if checks:
        out += ["", "## Goals", ""]
        out += _table(
            ["goal", "figure", "met"],
            [[c["goal"], c["figure"], "met" if c["met"] else "**missed**"] for c in checks],
        )
    return "\n".join(out) + "\n"


def _happy_markdown(data: dict[str, Any]) -> list[str]:
    rows = data["rows"]
    micro = [row for row in rows if row["unit"] == "µs/req"]
    loop = [row for row in rows if row["unit"] == "req/s"]
    out = [
        "## 1. Happy path",
        "",
        f"In-process: µs each layer adds per request over a zero-latency inner; median of "
        f"{data['micro_rounds']} interleaved rounds of {data['micro_n']:,} requests "
        "(interquartile range of the per-round difference).",
        "",
    ]
    if data.get("settle"):
        out += [
            f"forbear's layers ran {data['settle']:g} s before they were timed, here and on "
            "loopback: past a new origin's first seconds in their fresh gate (sends in flight "
            "counted, a crowd's slow start), which the crawl measures. These rows are what "
            "every request after them costs.",
            "",
        ]
    out += _table(
        ["client", "mode", "layer", "bare µs/req", "with layer", "added (IQR)"],
        [
            [
                row["family"],
                row["mode"].removeprefix("in-process "),
                _bold_forbear(row, row["layer"]),
                _fmt(row["bare"]),
                _fmt(row["layered"]),
                f"{row['overhead']:+.2f} ({_fmt(row['spread'][0])} .. {_fmt(row['spread'][1])})",
            ]
            for row in micro
        ],
    )
    out += [
        "",
        f"Loopback against {data['server']}: requests per second, bare client vs each layer; "
        f"median of {data['rounds']} interleaved rounds of {data['n']} requests"
        + (f" ({data['aiohttp_n']} for aiohttp)" if data.get("aiohttp_n") else "")
        + " (IQR of the per-round slowdown; negative: faster than bare).",
        "",
    ]
    out += _table(
        ["client", "mode", "layer", "bare req/s", "with layer", "slower (IQR)"],
        [
            [
                row["family"],
                row["mode"].removeprefix("loopback").lstrip(" ,"),
                _bold_forbear(row, row["layer"]),
                _fmt(row["bare"], 0),
                _fmt(row["layered"], 0),
                f"{row['overhead']:+.1f} % ({row['spread'][0]:+.1f} .. {row['spread'][1]:+.1f})",
            ]
            for row in loop
        ],
    )
    return out


def _bold_forbear(row: dict[str, Any], text: str) -> str:
    return f"**{text}**" if _is_forbear(row) else text


def _crawl_markdown(data: dict[str, Any]) -> list[str]:
    out = [
        "## 2. Rate-limited crawl",
        "",
        f"{data['urls']:,} URLs at concurrency {data['concurrency']} against {data['server']} "
        f"({data['rate']:g} r/s, burst {data['burst']}, 429 + `Retry-After: 1`); ideal "
        f"{data['ideal_s']:.1f} s (N / rate). Median of {data['repeats']} interleaved run(s) "
        "(range in brackets). 429s are counted at the server. *Floor*: the same URLs on the "
        "same server without the limit, through the bare client of the same kind (httpx async, "
        "aiohttp or requests threads): that client's own ceiling at this concurrency.",
        "",
    ]
    out += _table(
        ["client", "wall", "wall / ideal", "floor", "429s", "429s per success", "lost (max)"],
        [
            [
                _bold_forbear(row, row["name"]),
                f"{row['wall_s']:.1f} s",
                f"{row['wall_over_ideal']:.2f}x ({row['wall_over_ideal_range'][0]:.2f} .. "
                f"{row['wall_over_ideal_range'][1]:.2f})",
                "n/a" if _floor(data, row) is None else f"{_floor(data, row):.2f}x",
                f"{row['rejections_429']:,.0f}",
                f"{row['rejections_per_success']:.3f}",
                f"{row['lost']:,.0f} ({row['lost_max']:,})"
                + (f", {row['unfinished_max']:,} not done" if row["unfinished_max"] else ""),
            ]
            for row in data["rows"]
        ],
    )
    return out


def _outage_markdown(data: dict[str, Any]) -> list[str]:
    out = [
        "## 3. Outage",
        "",
        f"{data['requests']} logical requests at concurrency {data['concurrency']} to an origin "
        f"answering 503 to everything. Backoff: {data['backoff']} (so the scenario takes "
        f"seconds). Median of {data['repeats']} interleaved run(s).",
        "",
    ]
    out += _table(
        ["client", "arrivals per request (range)", "gives up after (median)", "wall"],
        [
            [
                _bold_forbear(row, row["name"]),
                f"{row['arrivals_per_request']:.2f} ({row['arrivals_per_request_range'][0]:.2f}"
                f" .. {row['arrivals_per_request_range'][1]:.2f})",
                f"{row['give_up_s'] * 1000:.0f} ms",
                f"{row['wall_s']:.2f} s",
            ]
            for row in data["rows"]
        ],
    )
    return out


def _token_markdown(data: dict[str, Any]) -> list[str]:
    out = [
        "## 4. Token expiry",
        "",
        f"{data['requests']} concurrent requests carrying a bearer token that has just expired. "
        f"Median of {data['repeats']} interleaved run(s).",
        "",
    ]
    out += _table(
        ["client", "successes", "token exchanges", "arrivals", "wall"],
        [
            [
                _bold_forbear(row, row["name"]),
                f"{row['successes']:.0f} / {data['requests']}",
                f"{row['exchanges']:.0f}",
                f"{row['arrivals']:.0f}",
                f"{row['wall_s']:.2f} s",
            ]
            for row in data["rows"]
        ],
    )
    return out


def _decide_markdown(data: dict[str, Any]) -> list[str]:
    out = [
        "## 5. Decision core",
        "",
        f"`forbear.decide` per call: median of {data['repeat']} runs of {data['number']:,} "
        "decisions (`benchmarks/bench_decide.py`).",
        "",
    ]
    out += _table(
        ["case", "µs / decision", "decisions / s"],
        [
            [case["name"], f"{case['us_per_decision']:.3f}", f"{case['decisions_per_second']:,.0f}"]
            for case in data["cases"]
        ],
    )
    return out


# -- chart ----------------------------------------------------------------------------------

_FORBEAR = "#c2571a"
_PEER = "#7a8794"
_BARE = "#c9d1d9"


def _colour(row: dict[str, Any]) -> str:
    if _is_forbear(row):
        return _FORBEAR
    bare = row.get("bare") is True or str(row.get("name", "")).startswith("bare ")
    return _BARE if bare else _PEER


def chart(results: dict[str, Any], path: Path) -> None:
    """Draw the run's main figures into a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = results["scenarios"]
    panels = [
        name
        for name in ("micro", "loopback", "crawl", "crawl429", "outage", "token")
        if _has_panel(scenarios, name)
    ]
    if not panels:
        return
    columns = 2
    lines = (len(panels) + 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(16, 5.2 * lines), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        _PANELS[panel](ax, scenarios)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    figure.suptitle(
        f"forbear vs peers: {results['machine']['cpus']}-CPU {results['machine']['os']}, "
        f"Python {results['machine']['python']}, {results['started'][:10]}",
        fontsize=13,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _has_panel(scenarios: dict[str, Any], panel: str) -> bool:
    if panel in ("micro", "loopback"):
        return "happy" in scenarios
    if panel.startswith("crawl"):
        return "crawl" in scenarios
    return panel in scenarios


def _barh(ax: Any, labels: list[str], values: list[float], colours: list[str], **kw: Any) -> None:
    positions = list(range(len(labels)))[::-1]
    ax.barh(positions, values, color=colours, **kw)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=8)


def _micro_panel(ax: Any, scenarios: dict[str, Any]) -> None:
    rows = [row for row in scenarios["happy"]["rows"] if row["unit"] == "µs/req"]
    labels = [f"{r['family']} {r['mode'].removeprefix('in-process ')}: {r['layer']}" for r in rows]
    errors = [
        [max(r["overhead"] - r["spread"][0], 0) for r in rows],
        [max(r["spread"][1] - r["overhead"], 0) for r in rows],
    ]
    _barh(ax, labels, [r["overhead"] for r in rows], [_colour(r) for r in rows], xerr=errors)
    ax.axvline(MICRO_GOAL_US, color="black", linestyle="--", linewidth=1)
    ax.set_title(f"1. In-process: µs added per request (transport adapters: ≤ {MICRO_GOAL_US:g})")
    ax.set_xlabel("µs per request over a zero-latency inner (median, IQR)")


def _loopback_panel(ax: Any, scenarios: dict[str, Any]) -> None:
    rows = [row for row in scenarios["happy"]["rows"] if row["unit"] == "req/s"]
    labels = [
        f"{r['family']} {r['mode'].removeprefix('loopback').lstrip(' ,')}: {r['layer']}"
        for r in rows
    ]
    errors = [
        [max(r["overhead"] - r["spread"][0], 0) for r in rows],
        [max(r["spread"][1] - r["overhead"], 0) for r in rows],
    ]
    _barh(ax, labels, [r["overhead"] for r in rows], [_colour(r) for r in rows], xerr=errors)
    for limit in sorted(set(LOOPBACK_GOAL_PERCENT.values())):
        ax.axvline(limit, color="black", linestyle="--", linewidth=1)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_title("1. Loopback: % slower than bare (≤ 3; aiohttp ≤ 5)")
    ax.set_xlabel("percent fewer requests per second than bare (median, IQR)")


def _crawl_panel(ax: Any, scenarios: dict[str, Any]) -> None:
    data = scenarios["crawl"]
    rows = data["rows"]
    _barh(
        ax,
        [r["name"] for r in rows],
        [r["wall_over_ideal"] for r in rows],
        [_colour(r) for r in rows],
    )
    ax.axvline(CRAWL_GOAL_RATIO, color="black", linestyle="--", linewidth=1)
    ax.axvline(1.0, color="black", linewidth=0.6)
    floor_label = "the bare client of that kind, no limit"
    for position, row in zip(list(range(len(rows)))[::-1], rows, strict=True):
        notes = []
        if row["lost"]:
            notes.append(f"{row['lost']:.0f} lost")
        if row["unfinished_max"]:
            notes.append(f"cut off, {row['unfinished_max']} not done")
        if notes:
            ax.text(
                row["wall_over_ideal"], position, "  " + ", ".join(notes), va="center", fontsize=8
            )
        floor = _floor(data, row)
        if floor is not None:
            ax.plot(floor, position, marker="|", color="black", markersize=14, label=floor_label)
            floor_label = "_"
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(
        f"2. Crawl, {data['urls']:,} URLs at {data['rate']:g} r/s: wall / ideal "
        f"(aiohttp, requests: ≤ {CRAWL_GOAL_RATIO:g})"
    )
    ax.set_xlabel("wall time / (N / rate)")


def _crawl429_panel(ax: Any, scenarios: dict[str, Any]) -> None:
    rows = scenarios["crawl"]["rows"]
    _barh(
        ax,
        [r["name"] for r in rows],
        [r["rejections_per_success"] for r in rows],
        [_colour(r) for r in rows],
    )
    ax.set_title("2. Crawl: 429s received per success (fewer is better)")
    ax.set_xlabel("429 answers / successes")


def _outage_panel(ax: Any, scenarios: dict[str, Any]) -> None:
    data = scenarios["outage"]
    rows = data["rows"]
    _barh(
        ax,
        [r["name"] for r in rows],
        [r["arrivals_per_request"] for r in rows],
        [_colour(r) for r in rows],
    )
    ax.axvline(1.0, color="black", linewidth=0.6)
    ax.axvline(OUTAGE_GOAL_ARRIVALS, color="black", linestyle="--", linewidth=1)
    ax.set_title(f"3. Outage (always 503), {data['requests']} requests: sends per logical request")
    ax.set_xlabel("arrivals at the server / logical requests (retry amplification)")


def _token_panel(ax: Any, scenarios: dict[str, Any]) -> None:
    data = scenarios["token"]
    rows = data["rows"]
    _barh(ax, [r["name"] for r in rows], [r["successes"] for r in rows], [_colour(r) for r in rows])
    for position, row in zip(list(range(len(rows)))[::-1], rows, strict=True):
        ax.text(
            row["successes"],
            position,
            f"  {row['exchanges']:.0f} exchange(s)",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(0, data["requests"] * 1.3)
    ax.set_title(f"4. Token expiry: successes of {data['requests']} concurrent requests")
    ax.set_xlabel("requests answered 200")


_PANELS = {
    "micro": _micro_panel,
    "loopback": _loopback_panel,
    "crawl": _crawl_panel,
    "crawl429": _crawl429_panel,
    "outage": _outage_panel,
    "token": _token_panel,
}
