"""``python -m benchmarks``: run the suite, print the tables, write JSON and a PNG chart."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks import bulk, runner, servers
from benchmarks.contenders import Kit, open_kit
from benchmarks.graph import checkpoints_per_turn, record_conversation
from benchmarks.report import Outcome, Target, markdown, print_outcome, table, targets_table
from benchmarks.runner import Loop
from benchmarks.settings import DEFAULT, SMOKE, Settings, large
from benchmarks.workloads import agent, concurrency, conversation, history, operations, profiles, storage

WORKLOADS = ("agent", "operations", "history", "storage", "concurrency", "conversation")
ROOT = Path(__file__).resolve().parent
PACKAGES = (
    "checkpoint-sql",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "langgraph-checkpoint-mysql",
    "sqlalchemy",
    "psycopg",
    "psycopg-pool",
    "pymysql",
    "asyncmy",
    "aiosqlite",
)
SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="checkpoint_sql against LangGraph's official savers and the raw drivers, interleaved, as ratios.",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one repetition: checks the suite runs (seconds)"
    )
    parser.add_argument("--large", action="store_true", help="add a 100k-checkpoint thread in a ~1M-row table (slow)")
    parser.add_argument("--engines", default=",".join(servers.ENGINES), help="comma-separated: sqlite,postgresql,mysql")
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated workloads: {','.join(WORKLOADS)} (default: all; --smoke: all but conversation)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile our operations with pyinstrument")
    parser.add_argument(
        "--require", action="store_true", help="fail (instead of skipping) when a server is unreachable"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where results go (default benchmarks/results, smoke: benchmarks/results/tmp/smoke)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="directory for the SQLite files (default <out>/../tmp/work)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="do not ANALYZE the PostgreSQL database between rounds (as autovacuum would on a production server)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings: Settings = SMOKE if args.smoke else DEFAULT
    if args.large:
        settings = large(settings)
    out: Path = args.out or (ROOT / "results" / "tmp" / "smoke" if args.smoke else ROOT / "results")
    out.mkdir(parents=True, exist_ok=True)
    workdir: Path = args.workdir or (ROOT / "results" / "tmp" / "work")
    console = Console(width=int(os.environ.get("COLUMNS", "200")), soft_wrap=False)
    logging.getLogger("asyncmy").setLevel(logging.ERROR)

    only = args.only if args.only is not None else ",".join(WORKLOADS)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    unknown = set(wanted) - set(WORKLOADS)
    if unknown:
        console.print(f"[red]unknown workloads: {', '.join(sorted(unknown))}[/]")
        return 2
    engines = []
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        if engine not in servers.ENGINES:
            console.print(f"[red]unknown engine {engine!r}[/]")
            return 2
        reason = servers.unreachable(engine)
        if reason is None:
            engines.append(engine)
        elif args.require:
            console.print(f"[red]{reason}[/]")
            return 1
        else:
            console.print(f"[yellow]skipping {engine}: {reason}[/]")

    started = time.perf_counter()
    meta = _meta(settings, engines, workdir, args)
    console.rule(f"checkpoint_sql benchmarks: {settings.name} run")
    console.print(_meta_table(meta))

    loop = Loop()
    databases = servers.Databases(workdir)
    kits: list[Kit] = []
    outcomes: list[Outcome] = []
    durations: dict[str, float] = {}
    profile_texts: dict[str, str] = {}
    try:
        for engine in engines:
            kits.append(open_kit(engine, databases, loop, pool_size=settings.pool_size))
        runner.between_rounds.clear()
        for kit in kits:
            if kit.engine == "postgresql" and not args.no_analyze:
                runner.between_rounds.append(partial(bulk.postgres_analyze, kit.db))
        meta["between_rounds"] = "PostgreSQL: ANALYZE" if runner.between_rounds else "nothing"
        console.print(f"between rounds (untimed): {meta['between_rounds']}")
        meta["durability"] = _durability(kits, loop)
        console.print(_durability_table(meta["durability"]))
        recorded = record_conversation(settings.shape, settings.op_turns, thread="recorded")
        first_turn = record_conversation(settings.shape, 1, thread="recorded-1")
        assert len(first_turn.puts) == checkpoints_per_turn(settings.shape), "checkpoints_per_turn is out of date"

        def step(name: str, fn: Any) -> None:
            console.rule(name)
            t0 = time.perf_counter()
            outcome = fn()
            durations[name] = time.perf_counter() - t0
            outcomes.append(outcome)
            print_outcome(console, outcome)

        quiet = args.quiet
        if "agent" in wanted:
            step("1. agent loop", lambda: agent.run(kits, settings, loop, quiet=quiet))
        if "operations" in wanted:
            step("2. per operation", lambda: operations.run(kits, recorded, settings, loop, quiet=quiet))
        if "history" in wanted:
            step("3. history length", lambda: history.run(kits, first_turn, settings, loop, quiet=quiet))
        if "storage" in wanted:
            step("4. storage", lambda: storage.run(engines, databases, settings))
        if "concurrency" in wanted:
            step("5. concurrency", lambda: concurrency.run(kits, settings, loop, quiet=quiet))
        if "conversation" in wanted:
            step(
                "6. long conversation",
                lambda: conversation.run(engines, databases, settings, analyze=not args.no_analyze, quiet=quiet),
            )
        if args.profile:
            console.rule("profiles (pyinstrument, ours, sync API)")
            t0 = time.perf_counter()
            profile_texts = profiles.run(kits, recorded, settings, out, loop)
            durations["profiles"] = time.perf_counter() - t0
            console.print(f"profiles written to {out / 'profiles'}")
    finally:
        for kit in kits:
            kit.close(loop)
        for error in databases.drop_all():
            console.print(f"[yellow]{error}[/]")
        loop.close()

    targets: list[Target] = [t for o in outcomes for t in o.targets]
    if targets:
        console.rule("targets")
        console.print(targets_table(targets))
    meta["seconds"] = time.perf_counter() - started
    meta["workload_seconds"] = durations
    meta["load_average_end"] = _load()
    results = {
        "meta": meta,
        "workloads": {o.name: o.data for o in outcomes},
        "notes": {o.name: o.notes for o in outcomes},
        "targets": [t.as_dict() for t in targets],
        "profiles": {k: profiles.top(v, 60) for k, v in profile_texts.items()},
    }
    suffix = "-large" if args.large else ""
    json_path = out / f"results{suffix}.json"
    json_path.write_text(json.dumps(_clean(results), indent=1, default=str) + "\n")
    preamble = [_meta_table(meta)] + ([_durability_table(meta["durability"])] if meta.get("durability") else [])
    (out / f"results{suffix}.md").write_text(markdown(outcomes, targets, preamble))
    png_path = out / f"chart{suffix}.png"
    try:
        from benchmarks import chart  # matplotlib is imported only when a chart is drawn
    except ImportError as exc:
        console.print(f"[yellow]no chart ({exc}); install the bench extra: pip install -e '.[bench]'[/]")
        console.print(f"\nwrote {json_path} in {meta['seconds']:.0f} s")
        return 0
    chart.draw(results, png_path)
    console.print(
        f"\nwrote {json_path}, {json_path.with_suffix('.md').name} and {png_path.name} in {meta['seconds']:.0f} s"
    )
    return 0


def _clean(value: Any) -> Any:
    """JSON without NaN/Infinity (strict parsers refuse them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _plain_value(value: Any) -> Any:
    """A setting as JSON can hold it (the shapes are dataclasses)."""
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _git() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "-"


def _meta(settings: Settings, engines: list[str], workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "settings": settings.name,
        "sizes": {k: _plain_value(v) for k, v in vars(settings).items()},
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "git": _git(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_start": _load(),
        "engines": engines,
        "sqlite": sqlite3.sqlite_version,
        "sqlite_files": f"{workdir} ({servers.filesystem_of(workdir)})",
        "packages": {p: _version(p) for p in PACKAGES},
        "servers": {},
    }
    for engine in engines:
        if engine == "sqlite":
            continue
        import sqlalchemy as sa

        probe = sa.create_engine(
            servers.server_url(engine).set(
                drivername="postgresql+psycopg" if engine == "postgresql" else "mysql+pymysql"
            )
        )
        with probe.connect() as conn:
            if engine == "postgresql":
                meta["servers"][engine] = {
                    "version": conn.exec_driver_sql("SHOW server_version").scalar(),
                    "fsync": conn.exec_driver_sql("SHOW fsync").scalar(),
                    "synchronous_commit": conn.exec_driver_sql("SHOW synchronous_commit").scalar(),
                    "autovacuum": conn.exec_driver_sql("SHOW autovacuum").scalar(),
                }
            else:
                row = conn.exec_driver_sql("SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@sync_binlog").one()
                meta["servers"][engine] = {
                    "version": row[0],
                    "innodb_flush_log_at_trx_commit": row[1],
                    "sync_binlog": row[2],
                }
        probe.dispose()
    return meta


def _meta_table(meta: dict[str, Any]) -> Any:
    t = table("Run", "item", "value")
    t.columns[1].justify = "left"
    t.add_row("settings", f"{meta['settings']}, started {meta['started']}")
    t.add_row("machine", f"{meta['machine']}, Python {meta['python']}, load average {meta['load_average_start']}")
    t.add_row("checkpoint_sql", f"git {meta['git']}")
    t.add_row("packages", ", ".join(f"{k} {v}" for k, v in meta["packages"].items() if k != "checkpoint-sql"))
    t.add_row("SQLite", f"{meta['sqlite']}, files in {meta['sqlite_files']}")
    for engine, info in meta["servers"].items():
        t.add_row(engine, ", ".join(f"{k} {v}" for k, v in info.items()))
    if "between_rounds" in meta:
        t.add_row("between rounds", meta["between_rounds"])
    return t


def _durability(kits: list[Kit], loop: Loop) -> list[dict[str, str]]:
    """SQLite journal mode and synchronous level, read back from every SQLite contender's
    own connection in this run (the official saver's default must match ours: FULL)."""
    rows: list[dict[str, str]] = []
    for kit in kits:
        if kit.engine == "sqlite":
            rows += [
                {"saver": saver, "journal_mode": journal, "synchronous": sync}
                for saver, (journal, sync) in _sqlite_pragmas(kit, loop).items()
            ]
    return rows


def _level(journal: Any, sync: Any) -> tuple[str, str]:
    return str(journal), SYNCHRONOUS.get(int(sync), str(sync))


def _sqlite_pragmas(kit: Kit, loop: Loop) -> dict[str, tuple[str, str]]:
    def read(execute: Any) -> tuple[str, str]:
        return _level(execute("PRAGMA journal_mode"), execute("PRAGMA synchronous"))

    # Our async API runs SQLite work on the sync engine's connections (one worker-thread
    # hop per operation), so those connections are the ones to read back.
    with kit.ours.db.sync_engine.connect() as conn:
        ours = read(lambda q: conn.exec_driver_sql(q).scalar())

    async def official_async() -> tuple[str, str]:
        conn = kit.official_async.conn  # type: ignore[attr-defined]
        async with conn.execute("PRAGMA journal_mode") as cur:
            journal = (await cur.fetchone())[0]
        async with conn.execute("PRAGMA synchronous") as cur:
            sync = (await cur.fetchone())[0]
        return _level(journal, sync)

    official_conn = kit.official.conn  # type: ignore[attr-defined]
    return {
        "SQLSaver (sync and async API)": ours,
        "SqliteSaver": read(lambda q: official_conn.execute(q).fetchone()[0]),
        "AsyncSqliteSaver": loop.run(official_async()),
        "raw floor (sqlite3)": read(lambda q: kit.raw.execute(q).fetchone()[0]),
    }


def _durability_table(rows: list[dict[str, str]]) -> Any:
    t = table(
        "SQLite durability, read back with PRAGMA from each contender's connection",
        "saver",
        "journal_mode",
        "synchronous",
    )
    for row in rows:
        t.add_row(row["saver"], row["journal_mode"], row["synchronous"])
    return t
