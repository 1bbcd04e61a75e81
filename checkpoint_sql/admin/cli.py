"""The ``checkpoint-sql`` command (also ``python -m checkpoint_sql``).

argparse, because the command is a flat set of subcommands with a few options each,
and the standard library keeps the install small. Every subcommand takes ``--url``
(default: ``$CHECKPOINT_SQL_URL``, else the embedded SQLite file), ``--table-prefix``
and, except ``demo``, ``--json``, before or after the subcommand's name. A failure is
one line on stderr and a non-zero exit: 1 for a refused or failed operation, 2 for a
malformed command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from checkpoint_sql.admin import checkpoints, doctor, history, prune, schema_status, thread_stats, threads, transfer
from checkpoint_sql.admin.langgraph_import import import_langgraph
from checkpoint_sql.admin.output import Declined, Output
from checkpoint_sql.core import engines
from checkpoint_sql.core.database import Database
from checkpoint_sql.core.engines import URL_ENV_VAR, default_sqlite_path
from checkpoint_sql.core.ids import thread_id_of
from checkpoint_sql.core.tables import DEFAULT_PREFIX
from checkpoint_sql.errors import CheckpointSQLError, ConfigurationError, SchemaNotReadyError, ThreadNotFoundError
from checkpoint_sql.saver.retention import RetentionReport, parse_duration
from checkpoint_sql.saver.schema import saver_tables
from checkpoint_sql.saver.sql_saver import SQLSaver, checked_filter


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is a --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _duration(text: str) -> Any:
    try:
        return parse_duration(text)
    except CheckpointSQLError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, not {text!r}")
    return int(text)


def _key_value(text: str) -> tuple[str, Any]:
    """``key=value``; the value is read as JSON when it is JSON (``step=3``,
    ``done=true``, ``user='"42"'``), else taken as text (``source=loop``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _global_options(parser: argparse.ArgumentParser, *, json_option: bool, defaults: bool) -> None:
    """The options every subcommand takes. They are accepted before the subcommand
    (``checkpoint-sql --url URL import FILE``, as git, psql and alembic users type
    them) and after it. The copy after it has no defaults (SUPPRESS), so a value given
    before the subcommand is not overwritten by the subcommand's default."""
    default = (lambda value: value) if defaults else (lambda _: argparse.SUPPRESS)
    parser.add_argument(
        "--url",
        default=default(None),
        help=f"database URL (default: ${URL_ENV_VAR}, else sqlite:///{default_sqlite_path()})",
    )
    parser.add_argument(
        "--table-prefix", default=default(DEFAULT_PREFIX), help=f"prefix of the saver's tables ({DEFAULT_PREFIX})"
    )
    if json_option:
        parser.add_argument(
            "--json", action="store_true", default=default(False), help="print JSON for scripts instead of tables"
        )


def _parser() -> argparse.ArgumentParser:
    connection = _Parser(add_help=False)
    _global_options(connection, json_option=False, defaults=False)
    listing = _Parser(add_help=False)
    _global_options(listing, json_option=True, defaults=False)

    parser = _Parser(prog="checkpoint-sql", description="LangGraph checkpoints in SQLite, PostgreSQL or MySQL/MariaDB.")
    _global_options(parser, json_option=True, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, parents: list[_Parser] | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=parents or [listing])

    demo = command("demo", "run a LangGraph agent: pause, resume, replay, fork, show the lineage", [connection])
    demo.add_argument("--thread", help="thread id to use (default: a new one per run)")

    listed = command("threads", "list threads: checkpoints, namespaces, first/last time, size")
    listed.add_argument("--sort", choices=threads.SORTS, default="last", help="sort key (default: %(default)s)")
    listed.add_argument("--asc", action="store_true", help="ascending order (default: descending)")
    listed.add_argument(
        "--filter", metavar="KEY=VALUE", type=_key_value, action="append", default=[], help="metadata equality"
    )
    listed.add_argument("--limit", type=_positive, default=50, help="threads per page (default: %(default)s)")
    listed.add_argument("--offset", type=_count, default=0, help="threads to skip (default: %(default)s)")

    lineage = command("history", "a thread's lineage as a tree: steps, sources, next nodes, writes, interrupts")
    lineage.add_argument("thread")

    show = command("show", "decoded channel values, metadata and pending writes of a checkpoint")
    show.add_argument("thread")
    show.add_argument("checkpoint", nargs="?", help="id, or a unique prefix/suffix of one (default: the latest)")
    show.add_argument("--ns", default="", help="checkpoint namespace (default: the root graph)")
    show.add_argument("--channel", help="only this channel's value")

    diff = command("diff", "which channels changed between two checkpoints, and how")
    diff.add_argument("thread")
    diff.add_argument("before")
    diff.add_argument("after")
    diff.add_argument("--ns", default="", help="checkpoint namespace (default: the root graph)")

    delete = command("delete", "delete threads, every namespace and checkpoint of them")
    delete.add_argument("threads", nargs="+", metavar="THREAD")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    copy = command("copy", "copy a thread (every namespace, same checkpoint ids) to a new thread id")
    copy.add_argument("source")
    copy.add_argument("target")
    copy.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    retain = command("prune", "delete old checkpoints; never cuts a DeltaChannel chain")
    retain.add_argument("--keep-last", type=_positive, metavar="N", help="keep the newest N per thread and namespace")
    retain.add_argument("--older-than", type=_duration, metavar="AGE", help="only delete checkpoints older (30d, 12h)")
    retain.add_argument("--thread", action="append", dest="threads", metavar="THREAD", help="only this thread")
    retain.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")
    retain.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    export = command("export", "write threads to a portable file (msgpack) for `import` into any engine")
    export.add_argument("threads", nargs="*", metavar="THREAD")
    export.add_argument("--all", action="store_true", help="every thread")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write, - for stdout")

    load = command("import", "read threads from an `export` file (creates the tables if needed)")
    load.add_argument("file", help="file to read, - for stdin")
    load.add_argument("--replace", action="store_true", help="overwrite threads that already exist")

    official = command("import-langgraph", "copy threads from langgraph-checkpoint-postgres or -sqlite tables")
    official.add_argument("--from", dest="source", required=True, metavar="URL", help="database of the official saver")
    official.add_argument("--thread", action="append", dest="threads", metavar="THREAD", help="only this thread")
    official.add_argument("--replace", action="store_true", help="overwrite threads already imported")

    figures = command("stats", "counts, sizes and time span of the saver's tables, or where one thread's bytes are")
    figures.add_argument("thread", nargs="?", help="report this thread's storage: bytes per channel and pending writes")
    upgrade = command("migrate", "create or upgrade the saver's tables")
    upgrade.add_argument("--show", action="store_true", help="only show the schema version and pending revisions")
    command("doctor", "check the connection, versions, settings and schema, with advice")
    return parser


# --- opening the database -----------------------------------------------------------------


def _saver(args: argparse.Namespace, *, create: bool = False) -> SQLSaver:
    """The saver on ``--url``. Commands that only read refuse a SQLite path that does
    not exist rather than create an empty file there."""
    saver = SQLSaver(args.url, table_prefix=args.table_prefix)
    url = saver.db.url
    on_disk = saver.db.family == "sqlite" and not engines.is_sqlite_memory(url)
    if not create and on_disk and not Path(url.database or "").exists():
        saver.close()
        raise ConfigurationError(f"no database file at {url.database}")
    return saver


def _thread(saver: SQLSaver, thread_id: str) -> int:
    """The number of checkpoints of a thread that must exist."""
    counts = threads.checkpoint_counts(saver, [thread_id])
    if not counts:
        raise ThreadNotFoundError(f"no such thread: {thread_id!r}")
    return sum(counts.values())


# --- subcommands -----------------------------------------------------------------------


def _demo(args: argparse.Namespace, out: Output) -> int:
    from checkpoint_sql.admin import demo

    demo.run(args.url, thread_id=args.thread, console=out.console)
    return 0


def _threads(args: argparse.Namespace, out: Output) -> int:
    filters = checked_filter(dict(args.filter))
    query = threads.ThreadQuery(filters, args.sort, not args.asc, args.limit, args.offset)
    with _saver(args) as saver:
        page = threads.page(saver, query)
    out.emit(page.to_json(), page.render)
    return 0


def _history(args: argparse.Namespace, out: Output) -> int:
    with _saver(args) as saver:
        _thread(saver, args.thread)
        found = history.of_thread(saver, args.thread)
    out.emit(found.to_json(), found.render)
    return 0


def _show(args: argparse.Namespace, out: Output) -> int:
    with _saver(args) as saver:
        _thread(saver, args.thread)
        checkpoint_id = checkpoints.resolve(saver, args.thread, args.ns, args.checkpoint)
        shown = checkpoints.Shown(*checkpoints.load(saver, args.thread, args.ns, checkpoint_id), channel=args.channel)
    out.emit(shown.to_json(), shown.render)
    return 0


def _diff(args: argparse.Namespace, out: Output) -> int:
    with _saver(args) as saver:
        _thread(saver, args.thread)
        before, after = (checkpoints.resolve(saver, args.thread, args.ns, c) for c in (args.before, args.after))
        old, old_deltas = checkpoints.load(saver, args.thread, args.ns, before)
        new, new_deltas = checkpoints.load(saver, args.thread, args.ns, after)
    compared = checkpoints.Diff(old, new, (old_deltas, new_deltas))
    out.emit(compared.to_json(), compared.render)
    return 0


def _delete(args: argparse.Namespace, out: Output) -> int:
    wanted = list(dict.fromkeys(thread_id_of(t) for t in args.threads))
    with _saver(args) as saver:
        counts = threads.checkpoint_counts(saver, wanted)
        missing = [t for t in wanted if t not in counts]
        if missing:
            raise ThreadNotFoundError(f"no such thread: {', '.join(map(repr, missing))}")
        total = sum(counts.values())
        out.confirm(f"Delete {len(wanted)} thread(s) with {total} checkpoints?", args.yes)
        saver.prune(wanted, strategy="delete")
    result = {"deleted": wanted, "checkpoints": total}
    out.emit(result, lambda: Text(f"deleted {len(wanted)} thread(s), {total} checkpoints"))
    return 0


def _copy(args: argparse.Namespace, out: Output) -> int:
    with _saver(args) as saver:
        source, target = thread_id_of(args.source), thread_id_of(args.target)
        n = _thread(saver, source)
        out.confirm(f"Copy thread {source!r} ({n} checkpoints) to {target!r}?", args.yes)
        saver.copy_thread(source, target)
    out.emit(
        {"source": source, "target": target, "checkpoints": n},
        lambda: Text(f"copied {source!r} to {target!r} ({n} checkpoints)"),
    )
    return 0


def _prune(args: argparse.Namespace, out: Output) -> int:
    if args.keep_last is None and args.older_than is None:
        raise ConfigurationError("prune needs --keep-last N, --older-than AGE, or both")
    with _saver(args) as saver:
        for thread_id in args.threads or ():
            _thread(saver, thread_id)

        def retain(dry_run: bool, doing: str) -> RetentionReport:
            with out.progress(doing) as progress:
                return saver.retain(
                    keep_last=args.keep_last,
                    older_than=args.older_than,
                    threads=args.threads,
                    dry_run=dry_run,
                    progress=progress,
                )

        if not args.dry_run and not args.yes:
            if not sys.stdin.isatty():
                raise Declined("prune deletes checkpoints: pass --yes to confirm (or --dry-run to look first)")
            preview = retain(True, "looking")
            if not preview.namespaces:
                out.emit(preview.to_json(), lambda: prune.render(preview))
                return 0
            out.err.print(prune.render(preview))
            out.confirm("Delete these checkpoints?", yes=False)
        report = retain(args.dry_run, "looking" if args.dry_run else "pruning")
    out.emit(report.to_json(), lambda: prune.render(report))
    return 0


def _export(args: argparse.Namespace, out: Output) -> int:
    if args.all == bool(args.threads):
        raise ConfigurationError("export needs thread ids or --all (not both)")
    with _saver(args) as saver:
        for thread_id in args.threads:
            _thread(saver, thread_id)
        wanted = None if args.all else args.threads
        with _open(args.output, "wb") as stream, out.progress("exporting") as progress:
            counts = transfer.export_threads(saver, wanted, stream, progress)
    where = "stdout" if args.output == "-" else args.output
    size = None if args.output == "-" else Path(args.output).stat().st_size
    result = {**counts.to_json(), "file": where, "bytes": size}
    summary = Text(
        f"exported {counts.threads} thread(s): {counts.checkpoints} checkpoints, {counts.blobs} blobs, "
        f"{counts.parts} list parts, {counts.writes} writes to {where}"
        + ("" if size is None else f" ({threads.human_bytes(size)})")
    )
    if args.output == "-":
        out.err.print(json.dumps(result) if out.as_json else summary)
    else:
        out.emit(result, lambda: summary)
    return 0


def _import(args: argparse.Namespace, out: Output) -> int:
    with _open(args.file, "rb") as stream, _saver(args, create=True) as saver:
        saver.setup()
        with out.progress("importing") as progress:
            counts = transfer.import_threads(saver, stream, replace=args.replace, progress=progress)
    out.emit(
        counts.to_json(),
        lambda: Text(
            f"imported {counts.threads} thread(s): {counts.checkpoints} checkpoints, "
            f"{counts.blobs} blobs, {counts.parts} list parts, {counts.writes} writes"
        ),
    )
    return 0


def _import_langgraph(args: argparse.Namespace, out: Output) -> int:
    with _saver(args, create=True) as saver:
        saver.setup()
        with out.progress("importing") as progress:
            report = import_langgraph(saver, args.source, args.threads, replace=args.replace, progress=progress)

    def human() -> Text:
        text = Text(
            f"imported {len(report.imported)} thread(s) from {report.source} ({report.layout}): "
            f"{report.checkpoints} checkpoints, {report.blobs} blobs, {report.parts} list parts, "
            f"{report.writes} writes"
        )
        if report.skipped:
            text.append(f"\nskipped {len(report.skipped)} already here (use --replace): {', '.join(report.skipped)}")
        return text

    out.emit(report.to_json(), human)
    return 0


def _stats(args: argparse.Namespace, out: Output) -> int:
    with _saver(args) as saver:
        if args.thread is not None:
            _thread(saver, args.thread)
            storage = thread_stats.of_thread(saver, args.thread)
            out.emit(storage.to_json(), storage.render)
            return 0
        figures = threads.stats(saver)
    out.emit(figures.to_json(), figures.render)
    return 0


def _migrate(args: argparse.Namespace, out: Output) -> int:
    with _saver(args, create=not args.show) as saver:
        if args.show:
            status = schema_status.of_saver(saver)
            out.emit(status.to_json(), lambda: _schema_table(status, saver.db.masked_url))
            return 0
        before, after = schema_status.upgrade(saver)
    result = {"before": before, "after": after, "changed": before != after}
    message = f"schema at revision {after}" + (f" (was {before or 'empty'})" if before != after else ", up to date")
    out.emit(result, lambda: Text(message))
    return 0


def _schema_table(status: schema_status.SchemaStatus, url: str) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("database", url)
    table.add_row("current", status.current or "(not set up)")
    table.add_row("bundled head", status.head)
    for revision, title in status.pending:
        table.add_row(Text("pending", style="yellow"), f"{revision}: {title}")
    if not status.pending and status.known:
        table.add_row("", Text("up to date", style="green"))
    return table


def _doctor(args: argparse.Namespace, out: Output) -> int:
    db = Database(args.url)
    try:
        found = doctor.diagnose(db, saver_tables(args.table_prefix))
    finally:
        db.close()
    out.emit(found.to_json(), found.render)
    return 0 if found.healthy else 1


def _open(name: str, mode: str) -> IO[bytes]:
    if name == "-":
        stream = sys.stdout.buffer if "w" in mode else sys.stdin.buffer
        return open(stream.fileno(), mode, closefd=False)
    return open(name, mode)


COMMANDS: dict[str, Callable[[argparse.Namespace, Output], int]] = {
    "demo": _demo,
    "threads": _threads,
    "history": _history,
    "show": _show,
    "diff": _diff,
    "delete": _delete,
    "copy": _copy,
    "prune": _prune,
    "export": _export,
    "import": _import,
    "import-langgraph": _import_langgraph,
    "stats": _stats,
    "migrate": _migrate,
    "doctor": _doctor,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and args.json:
        parser.error("demo prints a walk-through, not JSON: drop --json")
    out = Output(args.json)
    try:
        return COMMANDS[args.command](args, out)
    except SchemaNotReadyError:
        return _fail(out.err, "the saver's tables are not set up in this database; run `checkpoint-sql migrate` first")
    except CheckpointSQLError as exc:
        return _fail(out.err, str(exc))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return _fail(out.err, f"database error: {reason}")
    except NotImplementedError as exc:  # the serializer meets a type tag it cannot read
        return _fail(
            out.err,
            f"cannot decode the stored values ({exc}): this command reads them with LangGraph's default "
            "serializer; values written with another one (e.g. encrypted) can be listed, pruned, "
            "exported and imported, not shown",
        )
    except ModuleNotFoundError as exc:
        return _fail(out.err, f'{exc}; install the driver: pip install "checkpoint-sql[all]"')
    except OSError as exc:
        return _fail(out.err, f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        return _fail(out.err, "interrupted", code=130)


def _fail(err: Console, message: str, code: int = 1) -> int:
    err.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
