"""How the command talks: results on stdout (rich for people, JSON with ``--json``),
everything else (progress, prompts, errors) on stderr, so ``--json`` output and
``export -o -`` stay clean for pipes. rich drops colours and animation by itself
when its stream is not a terminal (or ``NO_COLOR`` is set)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.prompt import Confirm
from rich.table import Table
from rich.text import Text

from checkpoint_sql.errors import CheckpointSQLError


class Declined(CheckpointSQLError):
    """The user answered no to a confirmation, or could not be asked."""


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console()
        self.err = Console(stderr=True)

    def emit(self, data: Any, human: Callable[[], RenderableType]) -> None:
        """The command's result: `data` as JSON, or `human()` rendered."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            self.console.print(human())

    def confirm(self, question: str, yes: bool) -> None:
        """Go on only if `yes` was given or the user agrees; without a terminal to ask
        on, refuse rather than guess."""
        if yes:
            return
        if not sys.stdin.isatty():
            raise Declined(f"{question} Not confirmed: pass --yes to do it without asking")
        if not Confirm.ask(question, console=self.err, default=False):
            raise Declined("nothing done")

    @contextmanager
    def progress(self, description: str) -> Iterator[Callable[[int, int], None]]:
        """A progress bar on stderr for a run over many threads, shown only on a
        terminal; yields the callback jobs report (done, total) to (total 0: unknown)."""
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.err,
            transient=True,
            disable=self.as_json or not self.err.is_terminal,
        )
        task = bar.add_task(description, total=None)
        with bar:
            yield lambda done, total: bar.update(task, completed=done, total=total or None)


class WholeIds:
    """A table whose first column holds ids (thread ids) that are never cut.

    An id is what the user types next, so an ellipsis (``trip-20261…``) makes the
    row useless. Rich, short of width, shrinks the widest column first: the ids. So
    at render time, when the console width is known, the other columns are shrunk
    first (widest first, down to their longest word, wrapping at spaces), and only
    then does the id column narrow, folding long ids onto more lines, never cutting
    them.
    """

    def __init__(self, table: Table) -> None:
        self.table = table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self.table.columns[0].overflow = "fold"
        cells = [[c.header, *c.cells] for c in self.table.columns]
        widths = [max(_widest(cell, whole=True) for cell in column) for column in cells]
        floors = [max(_widest(cell, whole=False) for cell in column) for column in cells]
        available = options.max_width - (3 * len(widths) + 1)  # a rule and a space each side per column
        excess = sum(widths) - available
        if excess > 0:
            excess = _shrink(widths, floors, excess)
            keep = min(widths[0], ID_FLOOR)
            widths[0] -= min(excess, widths[0] - keep)
            _shrink(widths, [1] * len(widths), sum(widths) - available)  # a very narrow console
            for column, width in zip(self.table.columns, widths, strict=True):
                column.width = width
        yield self.table


ID_FLOOR = 12
"""Cells an id column keeps on a very narrow console, other columns shrinking below
their longest word (rich then abbreviates them) before it goes narrower."""


def _shrink(widths: list[int], floors: list[int], excess: int) -> int:
    """Narrow columns after the first, widest first, down to `floors`, by up to
    `excess` cells in all; returns the excess left."""
    while excess > 0 and (slack := [i for i in range(1, len(widths)) if widths[i] > floors[i]]):
        widths[max(slack, key=lambda i: widths[i])] -= 1
        excess -= 1
    return excess


def _widest(cell: Any, *, whole: bool) -> int:
    """Cells a cell's text takes on one line (`whole`), or its longest word."""
    text = cell.plain if isinstance(cell, Text) else str(cell)
    pieces = text.splitlines() if whole else text.split()
    return max((cell_len(p) for p in pieces), default=0)
