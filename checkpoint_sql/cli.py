"""The ``checkpoint-sql`` command (also ``python -m checkpoint_sql``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

from checkpoint_sql.engines import URL_ENV_VAR, default_sqlite_path
from checkpoint_sql.errors import CheckpointSQLError


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        help=f"database URL (default: ${URL_ENV_VAR}, else sqlite:///{default_sqlite_path()})",
    )
    parser = argparse.ArgumentParser(
        prog="checkpoint-sql",
        description="LangGraph checkpoints in SQLite, PostgreSQL or MySQL/MariaDB.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", parents=[common], help="run a LangGraph agent: pause, resume, replay, fork, show lineage"
    )
    demo.add_argument("--thread", help="thread id to use (default: a new one per run)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "demo":
            from checkpoint_sql import demo

            demo.run(args.url, thread_id=args.thread, console=console)
    except CheckpointSQLError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
