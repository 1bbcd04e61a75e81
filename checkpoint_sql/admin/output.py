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

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.prompt import Confirm

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
