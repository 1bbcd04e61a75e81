"""What the `checkpoint-sql` command asks of each engine beyond the saver's own SQL:
sizes and server settings, for `threads`, `stats` and `doctor`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from checkpoint_sql.dialects import Family


def stored_size(family: Family, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """Bytes a value takes in storage: PostgreSQL's ``pg_column_size`` (after TOAST
    compression, and without decompressing it), the byte length elsewhere."""
    if family == "postgresql":
        return sa.func.pg_column_size(column)
    return sa.func.length(column)


def table_bytes(family: Family, conn: Connection, tables: Sequence[sa.Table]) -> dict[str, int | None]:
    """On-disk size of each table with its indexes, or None where the engine cannot
    tell (a SQLite build without the ``dbstat`` table)."""
    sizes: dict[str, int | None] = {}
    for table in tables:
        if family == "postgresql":
            name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
            query = sa.text("SELECT pg_total_relation_size(to_regclass(:name))")
            sizes[table.name] = conn.execute(query, {"name": name}).scalar()
        elif family == "mysql":
            query = sa.text(
                "SELECT data_length + index_length FROM information_schema.tables "
                "WHERE table_schema = COALESCE(:schema, DATABASE()) AND table_name = :name"
            )
            sizes[table.name] = conn.execute(query, {"schema": table.schema, "name": table.name}).scalar()
        else:
            query = sa.text(
                "SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name = :name)"
            )
            try:
                sizes[table.name] = conn.execute(query, {"name": table.name}).scalar()
            except DBAPIError:
                sizes[table.name] = None
    return {name: None if size is None else int(size) for name, size in sizes.items()}


def server_facts(family: Family, conn: Connection) -> dict[str, Any]:
    """The server version and the settings `doctor` advises on."""
    if family == "sqlite":
        pragmas = ("journal_mode", "synchronous", "busy_timeout", "page_size", "page_count", "freelist_count")
        facts = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in pragmas}
        facts["version"] = conn.exec_driver_sql("SELECT sqlite_version()").scalar()
        return facts
    if family == "postgresql":
        names = ("server_version", "server_encoding", "statement_timeout", "idle_in_transaction_session_timeout")
        facts = {n: conn.exec_driver_sql(f"SHOW {n}").scalar() for n in names}
        facts["version"] = facts.pop("server_version")
        return facts
    row = conn.exec_driver_sql(
        "SELECT @@version, @@max_allowed_packet, @@character_set_server, @@innodb_lock_wait_timeout"
    ).one()
    return {
        "version": row[0],
        "mariadb": "mariadb" in str(row[0]).lower(),
        "max_allowed_packet": int(row[1]),
        "character_set_server": row[2],
        "innodb_lock_wait_timeout": int(row[3]),
    }
