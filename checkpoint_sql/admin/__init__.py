"""The ``checkpoint-sql`` command and every tool only it uses: thread listings, lineage,
decoded checkpoints, statistics, health checks, pruning, copying, export and import.

Each module holds its queries (operations run through `Database`) and the data they
yield, with a JSON form for ``--json`` and a rich renderable for people. `rich` is
this layer's alone and comes with the ``cli`` extra, so `main` checks for it before
importing the command: without it the library still works, and the command says in
one line how to get it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

RICH_MISSING = 'checkpoint-sql: the command needs rich, which is not installed: pip install "checkpoint-sql[cli]"'


def main(argv: Sequence[str] | None = None) -> int:
    """The console script and ``python -m checkpoint_sql``."""
    try:
        import rich  # noqa: F401
    except ImportError:
        print(RICH_MISSING, file=sys.stderr)
        return 1
    from checkpoint_sql.admin import cli

    return cli.main(argv)
