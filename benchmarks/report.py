"""What a workload hands back (tables, JSON data, target checks) and how it is printed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from benchmarks.stats import Summary


@dataclass
class Target:
    """One target of the issue, checked against this run's numbers."""

    workload: str
    what: str
    measured: float
    limit: float
    higher_is_better: bool = False
    note: str = ""
    unit: str = "x"

    @property
    def met(self) -> bool | None:
        if not math.isfinite(self.measured):
            return None
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit

    @property
    def margin(self) -> float:
        """How far from the limit, as a factor: > 1 means missed by that factor."""
        if not math.isfinite(self.measured) or self.measured <= 0:
            return math.nan
        return self.limit / self.measured if self.higher_is_better else self.measured / self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "what": self.what,
            "measured": self.measured,
            "limit": self.limit,
            "higher_is_better": self.higher_is_better,
            "met": self.met,
            "margin": self.margin,
            "note": self.note,
            "unit": self.unit,
        }


@dataclass
class Outcome:
    """A workload's results."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- formatting ------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    size = abs(seconds)
    if size >= 1:
        return f"{seconds:.2f} s"
    if size >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"


def spread(summary: Summary) -> str:
    """The interquartile range relative to the median."""
    value = summary.spread
    return "-" if not math.isfinite(value) else f"{value * 100:.0f}%"


def ratio(value: float, digits: int = 2) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}x"


def ratio_with_spread(summary: Summary) -> str:
    if not math.isfinite(summary.median):
        return "-"
    return escape(f"{summary.median:.2f}x [{summary.p25:.2f}-{summary.p75:.2f}]")


def count(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def size(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def verdict(target: Target) -> str:
    met = target.met
    if met is None:
        return "[yellow]n/a[/]"
    if met:
        return "[green]met[/]"
    return f"[red]missed ({target.margin:.2f}x off)[/]"


def table(title: str, *columns: str, caption: str | None = None) -> Table:
    t = Table(title=title, title_justify="left", caption=caption, caption_justify="left", show_lines=False)
    for i, name in enumerate(columns):
        t.add_column(name, justify="left" if i == 0 else "right", no_wrap=i == 0)
    return t


def targets_table(targets: list[Target]) -> Table:
    t = table("Targets (ratios measured side by side in this run)", "target", "measured", "limit", "verdict")
    for target in targets:
        show = ratio if target.unit == "x" else count
        limit = ("≥ " if target.higher_is_better else "≤ ") + show(target.limit)
        what = f"{target.workload}: {target.what}" + (f" ({target.note})" if target.note else "")
        t.add_row(what, show(target.measured), limit, verdict(target))
    return t


def print_outcome(console: Console, outcome: Outcome) -> None:
    for t in outcome.tables:
        console.print(t)
        console.print()
    for note in outcome.notes:
        console.print(f"[dim]{escape(note)}[/]")
    if outcome.notes:
        console.print()


# --- markdown ----------------------------------------------------------------------------------


def _plain(cell: object) -> str:
    text = cell.plain if isinstance(cell, Text) else Text.from_markup(str(cell)).plain
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(t: Table) -> str:
    """A rich table as a GitHub markdown table (title as a bold line above it)."""
    headers = [_plain(c.header) for c in t.columns]
    rows = list(zip(*[[_plain(cell) for cell in c._cells] for c in t.columns], strict=True))
    align = [":---" if i == 0 else "---:" for i in range(len(headers))]
    lines = [f"**{_plain(t.title)}**" if t.title else "", "", "| " + " | ".join(headers) + " |"]
    lines.append("| " + " | ".join(align) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(outcomes: list[Outcome], targets: list[Target], preamble: list[Table]) -> str:
    """Every table of a run, in markdown, in the order they were printed."""
    parts = [markdown_table(t) for t in preamble]
    for outcome in outcomes:
        parts += [markdown_table(t) for t in outcome.tables]
        parts += [f"_{note}_" for note in outcome.notes]
    if targets:
        parts.append(markdown_table(targets_table(targets)))
    return "\n\n".join(parts) + "\n"
