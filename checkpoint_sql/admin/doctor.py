"""`checkpoint-sql doctor`: can we reach the database, and is it set up the way the
saver expects? Each finding is a `Check` with a status and, when something is off,
the command or setting that fixes it.
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from checkpoint_sql.admin import schema_status
from checkpoint_sql.admin.threads import human_bytes
from checkpoint_sql.core import engines
from checkpoint_sql.core.database import Database
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.introspection import server_facts
from checkpoint_sql.dialects.locks import is_galera
from checkpoint_sql.errors import EngineUnreachableError
from checkpoint_sql.saver.schema import SaverTables

_MARK = {"ok": ("✓", "green"), "info": ("·", "dim"), "warn": ("!", "bold yellow"), "fail": ("✗", "bold red")}
_PACKAGES = ("checkpoint-sql", "langgraph", "langgraph-checkpoint", "sqlalchemy", "alembic")
_DRIVERS = {"sqlite": ("aiosqlite",), "postgresql": ("psycopg",), "mysql": ("pymysql", "asyncmy")}
_MIN_SERVER = {"postgresql": (12,), "mysql": (8, 0, 4), "mariadb": (10, 6)}
_PACKET_MIN = 64 * 1024 * 1024


@dataclass
class Check:
    name: str
    status: str
    """ok, info, warn or fail."""
    detail: str
    advice: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "advice": self.advice}


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def add(self, name: str, status: str, detail: str, advice: str | None = None) -> None:
        self.checks.append(Check(name, status, detail, advice))

    def to_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "checks": [c.to_json() for c in self.checks], "facts": self.facts}

    def render(self) -> RenderableType:
        table = Table(show_header=False, box=None, padding=(0, 1))
        table.add_column()
        table.add_column(style="bold")
        table.add_column()
        for check in self.checks:
            mark, style = _MARK[check.status]
            detail = Text(check.detail)
            if check.advice:
                detail.append(f"\n→ {check.advice}", style="yellow")
            table.add_row(Text(mark, style=style), check.name, detail)
        verdict = Text(
            "healthy" if self.healthy else "problems found", style="bold green" if self.healthy else "bold red"
        )
        return Group(table, verdict)


def diagnose(db: Database, tables: SaverTables) -> Diagnosis:
    found = Diagnosis()
    found.add("database", "info", f"{db.masked_url} ({db.family})")
    versions = {name: _version(name) for name in (*_PACKAGES, *_DRIVERS[db.family])}
    found.facts["python"] = platform.python_version()
    found.facts["packages"] = versions
    found.add("packages", "info", ", ".join(f"{n} {v or 'missing'}" for n, v in versions.items()))
    missing = [n for n in _DRIVERS[db.family] if versions[n] is None]
    if missing:
        found.add(
            "driver",
            "fail",
            f"not installed: {', '.join(missing)}",
            f'pip install "checkpoint-sql[{_extra(db.family)}]"',
        )
        return found
    if db.family == "sqlite" and not engines.is_sqlite_memory(db.url):
        path = Path(db.url.database or "")
        if not path.exists():
            found.add(
                "file",
                "fail",
                f"no database file at {path}",
                "check the path, or create it with `checkpoint-sql migrate`",
            )
            return found
        found.add("file", "info", f"{path} ({human_bytes(path.stat().st_size)})")
    try:
        facts, status = db.run(_gather, tables, db.family)
    except EngineUnreachableError as exc:
        found.add("connection", "fail", str(exc), _reach_advice(db.family, str(exc)))
        return found
    except DBAPIError as exc:  # connected, but the server answers no query
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        found.add("connection", "fail", f"the server refuses queries: {reason}", _reach_advice(db.family, reason))
        return found
    found.facts.update(server=facts, schema=status.to_json())
    found.add("connection", "ok", f"connected; server {facts['version']}")
    _check_server(found, db.family, facts)
    _check_schema(found, status)
    if db.family == "sqlite":
        _check_sqlite(found, facts)
    elif db.family == "mysql":
        _check_mysql(found, facts)
        _check_galera(found, db.run(_galera_facts))
    else:
        _check_standby(found, db.run(_in_recovery))
        _check_pooler(found, *_pooling(db))
    return found


def _gather(conn: Connection, tables: SaverTables, family: Family) -> tuple[dict[str, Any], schema_status.SchemaStatus]:
    return server_facts(family, conn), schema_status.status(conn, tables.migrations)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _extra(family: str) -> str:
    return {"postgresql": "postgres", "mysql": "mysql"}.get(family, "all")


def _reach_advice(family: str, reason: str) -> str:
    if "WSREP" in reason:
        return "this Galera node is not in the primary component; list every node in the URL (host=...&host=...)"
    if family == "sqlite":
        return "check that the directory exists and is writable"
    return "check that the server is running and that host, port, user, password and database name are right"


def _numbers(version: str) -> tuple[int, ...]:
    digits = []
    for part in version.split("-")[0].split(" ")[0].split("."):
        if not part.isdigit():
            break
        digits.append(int(part))
    return tuple(digits)


def _check_server(found: Diagnosis, family: str, facts: dict[str, Any]) -> None:
    kind = "mariadb" if facts.get("mariadb") else family
    minimum = _MIN_SERVER.get(kind)
    if minimum is not None and _numbers(str(facts["version"])) < minimum:
        wanted = ".".join(map(str, minimum))
        found.add(
            "server",
            "fail",
            f"{kind} {facts['version']} is older than {wanted}",
            f"upgrade to {kind} {wanted} or later",
        )


def _check_schema(found: Diagnosis, status: schema_status.SchemaStatus) -> None:
    if not status.known:
        found.add(
            "schema",
            "fail",
            f"revision {status.current} is unknown to this checkpoint-sql (bundled head {status.head})",
            "a newer checkpoint-sql migrated this database: upgrade the package",
        )
    elif status.current is None:
        found.add(
            "schema", "fail", "the saver's tables are not set up", "run `checkpoint-sql migrate` (or saver.setup())"
        )
    elif status.pending:
        names = ", ".join(f"{r} ({t})" for r, t in status.pending)
        found.add("schema", "warn", f"at {status.current}; pending: {names}", "run `checkpoint-sql migrate`")
    else:
        found.add("schema", "ok", f"at revision {status.current}, up to date")


def _check_sqlite(found: Diagnosis, facts: dict[str, Any]) -> None:
    if str(facts["journal_mode"]).lower() == "wal":
        found.add("journal_mode", "ok", "wal: readers do not block the writer")
    else:
        found.add(
            "journal_mode",
            "warn",
            f"{facts['journal_mode']}",
            "the saver switches to WAL on connect; check the file system supports it",
        )
    synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(facts["synchronous"], facts["synchronous"])
    if synchronous in ("FULL", "EXTRA"):
        found.add("synchronous", "ok", f"{synchronous}: a committed checkpoint survives power loss")
    else:
        found.add("synchronous", "info", f"{synchronous}: the last commits may be lost on power loss")
    found.add("busy_timeout", "ok" if facts["busy_timeout"] >= 1000 else "warn", f"{facts['busy_timeout']} ms")
    pages, free = int(facts["page_count"]), int(facts["freelist_count"])
    free_bytes = free * int(facts["page_size"])
    if pages and free / pages > 0.25 and free_bytes > 8_000_000:
        found.add(
            "free space",
            "warn",
            f"{free}/{pages} pages free ({human_bytes(free_bytes)})",
            "reclaim it with `sqlite3 FILE 'VACUUM'` while no writer runs",
        )
    else:
        found.add("free space", "ok", f"{free}/{pages} pages free")


def _check_mysql(found: Diagnosis, facts: dict[str, Any]) -> None:
    packet = facts["max_allowed_packet"]
    if packet < _PACKET_MIN:
        found.add(
            "max_allowed_packet",
            "warn",
            f"{human_bytes(packet)}: a checkpoint or write larger than this cannot be stored",
            "SET GLOBAL max_allowed_packet = 268435456 (and in the server's config file)",
        )
    else:
        found.add("max_allowed_packet", "ok", human_bytes(packet))


# --- replicated servers and poolers ------------------------------------------------------


def _galera_facts(conn: Connection) -> dict[str, str] | None:
    if not is_galera(conn):
        return None
    rows = conn.exec_driver_sql(
        "SHOW STATUS WHERE Variable_name IN ('wsrep_cluster_size', 'wsrep_cluster_status', 'wsrep_local_state_comment')"
    )
    facts = {str(name): str(value) for name, value in rows}
    facts["wsrep_sync_wait"] = str(conn.exec_driver_sql("SELECT @@wsrep_sync_wait").scalar())
    return facts


def _check_galera(found: Diagnosis, facts: dict[str, str] | None) -> None:
    if facts is None:
        return
    found.facts["galera"] = facts
    detail = (
        f"node {facts.get('wsrep_local_state_comment')} in a {facts.get('wsrep_cluster_status')} "
        f"component of {facts.get('wsrep_cluster_size')} nodes; wsrep_sync_wait={facts['wsrep_sync_wait']}"
    )
    healthy = facts.get("wsrep_cluster_status") == "Primary" and facts.get("wsrep_local_state_comment") == "Synced"
    found.add(
        "galera",
        "ok" if healthy else "warn",
        detail,
        None if healthy else "this node does not serve clients now; list every node in the URL (host=...&host=...)",
    )


def _in_recovery(conn: Connection) -> bool:
    return bool(conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar())


def _check_standby(found: Diagnosis, in_recovery: bool) -> None:
    found.facts["in_recovery"] = in_recovery
    if in_recovery:
        found.add(
            "standby",
            "info",
            "a hot standby: reads (threads, history, show, read-only stores) work, writes fail",
            "for writes, name the primary too with target_session_attrs=read-write (host=...&host=...)",
        )


def _pooling(db: Database) -> tuple[bool | None, bool, int | None]:
    """Whether a transaction pooler (PgBouncer in transaction mode) sits between us and
    the server; whether any proxy does; and the prepare threshold in use.

    Under transaction pooling a server session is handed to whichever client runs the
    next transaction, so a second client connection opened while the first is idle
    gets the *same* server backend: two connections seeing one `pg_backend_pid()` is
    proof. A proxy of any kind shows as the server seeing another client port than
    our socket's. None: not conclusive (a busy pooler may hand out another backend).
    """
    engine = db.sync_engine
    with engine.connect() as first, engine.connect() as second:
        pid = first.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        other, seen_port = second.exec_driver_sql("SELECT pg_backend_pid(), inet_client_port()").one()
        raw = second.connection.dbapi_connection
        threshold = getattr(raw, "prepare_threshold", None)
        our_port = _local_port(raw)
    proxied = seen_port is not None and our_port is not None and seen_port != our_port
    return (True if pid == other else None), proxied, threshold


def _local_port(raw: Any) -> int | None:
    try:
        with socket.socket(fileno=os.dup(raw.pgconn.socket)) as sock:
            address = sock.getsockname()
    except (AttributeError, OSError):
        return None
    return int(address[1]) if isinstance(address, tuple) else None


def _check_pooler(found: Diagnosis, transaction_pooling: bool | None, proxied: bool, threshold: int | None) -> None:
    found.facts["pooler"] = {"transaction_pooling": transaction_pooling, "proxied": proxied}
    if transaction_pooling:
        if threshold is None:
            found.add("pooler", "ok", "transaction pooling (PgBouncer?); server-side prepared statements are off")
        else:
            found.add(
                "pooler",
                "fail",
                f"transaction pooling (PgBouncer?) with prepared statements on (prepare_threshold={threshold}): "
                "a statement prepared in one server session is missing in the next",
                "add prepare_threshold=none to the URL (or EngineOptions(prepare_threshold=None))",
            )
    elif proxied:
        found.add(
            "pooler",
            "info",
            "connections go through a proxy or pooler (session pooling, or too busy to tell)",
            None if threshold is None else "if it pools transactions, add prepare_threshold=none to the URL",
        )
