"""The PNG chart of a run: a panel or two per workload, as ratios, per-unit costs or bytes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

_PLAIN = FuncFormatter(lambda value, _: f"{value:g}")
_KB = FuncFormatter(lambda value, _: f"{value / 1000:g} kB")


def _plain_log(ax: Any, formatter: FuncFormatter = _PLAIN) -> None:
    """A log y axis labelled 0.1, 1, 10 rather than 10^-1, without minor labels."""
    ax.yaxis.set_major_formatter(formatter)
    ax.yaxis.set_minor_formatter(NullFormatter())


LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}
OURS, OFFICIAL, MEMORY = "#1f77b4", "#ff7f0e", "#7f7f7f"


def _bars(ax: Any, groups: list[str], series: dict[str, list[float]], colors: list[str]) -> None:
    width = 0.8 / max(1, len(series))
    for i, ((name, values), color) in enumerate(zip(series.items(), colors, strict=False)):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [v if math.isfinite(v) else 0 for v in values], width, label=name, color=color)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.legend(fontsize=7)


def draw(results: dict[str, Any], path: Path) -> None:
    workloads = results.get("workloads", {})
    fig, axes = plt.subplots(2, 4, figsize=(22, 9.5))
    fig.suptitle(
        f"checkpoint_sql benchmarks ({results['meta']['settings']} run, {results['meta']['started']})", fontsize=12
    )
    _agent(axes[0][0], workloads.get("agent_loop"))
    _ops_floor(axes[0][1], workloads.get("operations"))
    _ops_official(axes[0][2], workloads.get("operations"))
    _history(axes[1][0], workloads.get("history"))
    _storage(axes[1][1], workloads.get("storage"))
    _concurrency(axes[1][2], workloads.get("concurrency"))
    _conversation_bytes(axes[0][3], workloads.get("conversation"))
    _conversation_ratios(axes[1][3], workloads.get("conversation"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _missing(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)


def _agent(ax: Any, data: dict[str, Any] | None) -> None:
    title = "Agent loop: overhead over InMemorySaver (ms per checkpoint)"
    if not data:
        return _missing(ax, title)
    summary, n = data["summary"], data["checkpoints_per_sample"]
    engines = sorted({c["engine"] for c in data["contenders"].values()} - {"memory"}, key=list(LABELS).index)
    groups, ours, official = [], [], []
    for api in ("sync", "async"):
        floor = summary[f"memory/{api}"]["median"]
        for e in engines:
            groups.append(f"{LABELS[e]}\n{api}")
            ours.append((summary[f"ours/{e}/{api}"]["median"] - floor) / n * 1e3)
            official.append((summary[f"official/{e}/{api}"]["median"] - floor) / n * 1e3)
    _bars(ax, groups, {"SQLSaver": ours, "official saver": official}, [OURS, OFFICIAL])
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("ms per checkpoint")


def _ops_floor(ax: Any, data: dict[str, Any] | None) -> None:
    title = "Per operation: ours ÷ (floor + serde), sync API"
    if not data:
        return _missing(ax, title)
    engines = list(data["engines"])
    ops = [op for op, r in next(iter(data["engines"].values()))["ratios"].items() if r["ours_over_floor_serde"]]
    series = {
        LABELS[e]: [
            (data["engines"][e]["ratios"][op]["ours_over_floor_serde"] or {}).get("median", math.nan) for op in ops
        ]
        for e in engines
    }
    _bars(ax, [op.replace(" (", "\n(") for op in ops], series, ["#2ca02c", "#9467bd", "#8c564b"])
    ax.axhline(1.2, color="red", linestyle="--", linewidth=1)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("x (floor + serde) (target ≤ 1.2)")
    ax.tick_params(axis="x", labelsize=6)


def _ops_official(ax: Any, data: dict[str, Any] | None) -> None:
    title = "Per operation: ours ÷ official saver, sync API"
    if not data:
        return _missing(ax, title)
    engines = list(data["engines"])
    ratios = next(iter(data["engines"].values()))["ratios"].items()
    # the operations with a target (those with a floor + serde figure)
    ops = [op for op, r in ratios if r["ours_over_official"] and r["ours_over_floor_serde"]]
    series = {
        LABELS[e]: [
            (data["engines"][e]["ratios"][op]["ours_over_official"] or {}).get("median", math.nan) for op in ops
        ]
        for e in engines
    }
    _bars(ax, [op.replace(" (", "\n(") for op in ops], series, ["#2ca02c", "#9467bd", "#8c564b"])
    ax.axhline(1.0, color="red", linestyle="--", linewidth=1)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("x official (target ≤ 1)")
    ax.tick_params(axis="x", labelsize=6)


def _history(ax: Any, data: dict[str, Any] | None) -> None:
    title = "History length: get_tuple (latest), median per call"
    if not data:
        return _missing(ax, title)
    sizes = data["sizes"]
    summary = data["summary"]
    engines = sorted({k.split("/")[0] for k in summary}, key=list(LABELS).index)
    styles = {"ours": "-", "official": "--", "floor": ":"}
    colors = {"sqlite": "#2ca02c", "postgresql": "#9467bd", "mysql": "#8c564b"}
    for e in engines:
        for who, style in styles.items():
            ys = [summary[f"{e}/{who}/get_tuple (latest)/{s}"]["median"] * 1e3 for s in sizes]
            ax.plot(sizes, ys, style, marker="o", color=colors[e], label=f"{LABELS[e]} {who}", markersize=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log(ax)
    ax.set_xlabel("checkpoints in the thread")
    ax.set_ylabel("ms per call (log)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6, ncol=3)


def _storage(ax: Any, data: dict[str, Any] | None) -> None:
    title = "Storage: bytes on disk per checkpoint (lower is better)"
    if not data:
        return _missing(ax, title)
    groups, ours, official = [], [], []
    for key, entry in data["results"].items():
        engine, scenario = key.split("/", 1)
        short = {"large constant value": "constant doc", "growing messages": "messages"}.get(scenario, scenario)
        groups.append(f"{LABELS[engine]}\n{short}")
        ours.append(entry["ours"]["per_checkpoint"])
        official.append(entry["official"]["per_checkpoint"])
    _bars(ax, groups, {"SQLSaver": ours, "official saver": official}, [OURS, OFFICIAL])
    ax.yaxis.set_major_formatter(_KB)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("per checkpoint")
    ax.tick_params(axis="x", labelsize=7)


def _concurrency(ax: Any, data: dict[str, Any] | None) -> None:
    title = "Concurrency: turns/s of concurrent async runs (higher is better)"
    if not data:
        return _missing(ax, title)
    tp = data["throughput"]
    engines = sorted({k.split("/")[1] for k in tp if "/" in k}, key=list(LABELS).index)
    groups = [LABELS[e] for e in engines]
    series = {
        "SQLSaver": [tp[f"ours/{e}"]["median"] for e in engines],
        "official async saver": [tp[f"official/{e}"]["median"] for e in engines],
    }
    _bars(ax, groups, series, [OURS, OFFICIAL])
    ax.axhline(tp["memory"]["median"], color=MEMORY, linestyle="--", linewidth=1, label="InMemorySaver")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("turns/s")


def _conversation_bytes(ax: Any, data: dict[str, Any] | None) -> None:
    title = "Long conversation: bytes on disk after the last turn (log)"
    if not data:
        return _missing(ax, title)
    results = data["results"]
    engines = [e for e in LABELS if e in results]
    series = {
        "SQLSaver": [results[e]["bytes_on_disk"]["ours"] for e in engines],
        "official saver": [results[e]["bytes_on_disk"]["official"] for e in engines],
        "floor": [results[e]["floor_bytes"] for e in engines],
    }
    _bars(ax, [LABELS[e] for e in engines], series, [OURS, OFFICIAL, MEMORY])
    ax.set_yscale("log")
    _plain_log(ax, _KB)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("bytes (log)")


def _conversation_ratios(ax: Any, data: dict[str, Any] | None) -> None:
    title = "Long conversation: ours ÷ official saver (sync API)"
    if not data:
        return _missing(ax, title)
    summary = data["summary"]
    engines = [e for e in LABELS if e in summary]
    groups = [f"turns {data['turns'] - data['timed_turns'] + 1}-{data['turns']}\n(target ≤ 0.5)"]
    groups += [op.replace(" (", "\n(") for op in next(iter(summary.values()))["reads"]]
    series = {
        LABELS[e]: [
            summary[e]["last_turns_ours_over_official"],
            *[r["ratio"]["median"] for r in summary[e]["reads"].values()],
        ]
        for e in engines
    }
    _bars(ax, groups, series, ["#2ca02c", "#9467bd", "#8c564b"])
    ax.axhline(1.0, color="red", linestyle="--", linewidth=1)
    ax.hlines(0.5, -0.45, 0.45, color="red", linestyle=":", linewidth=1.5)  # the turns' target
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("x official (reads: target ≤ 1)")
    ax.tick_params(axis="x", labelsize=7)
