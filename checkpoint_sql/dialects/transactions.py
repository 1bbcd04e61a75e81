"""How a transaction begins on each engine, and how one is kept from writing.

The write lock up front on SQLite, READ COMMITTED or one consistent snapshot on the
servers; PostgreSQL's read-only statement, SQLite's read-only file.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa

from checkpoint_sql.dialects import Family

Mode = Literal["read", "write", "snapshot"]


def begin_sql(family: Family, mode: Mode) -> list[str]:
    """The statements opening an explicit transaction on an autocommit connection.

    SQLite: a writer takes the write lock up front (BEGIN IMMEDIATE), so it waits on
    `busy_timeout` instead of failing with "database is locked" when it upgrades a
    read lock. PostgreSQL and MySQL run in READ COMMITTED, except `snapshot`
    transactions (operations that read rows, then delete exactly those), which get
    one consistent view.
    """
    if family == "sqlite":
        return ["BEGIN IMMEDIATE" if mode != "read" else "BEGIN"]
    if mode != "snapshot":
        return ["BEGIN" if family == "postgresql" else "START TRANSACTION"]
    if family == "postgresql":
        return ["BEGIN ISOLATION LEVEL REPEATABLE READ"]
    return ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION"]


def read_only_sql(family: Family) -> str | None:
    """The first statement of a transaction the server itself must keep from writing,
    where one exists once the transaction has begun: PostgreSQL's. MySQL only accepts
    READ ONLY before START TRANSACTION, and SQLite has no per-transaction form (open
    its file read-only instead, `read_only_url`); there the store's own refusal holds."""
    return "SET TRANSACTION READ ONLY" if family == "postgresql" else None


def read_only_url(url: sa.URL) -> sa.URL:
    """A SQLite file URL opened read-only (``mode=ro``), so that opening never creates a
    missing file and no statement can write; other URLs unchanged."""
    if url.get_backend_name() != "sqlite" or url.query.get("mode") == "memory" or not url.database:
        return url
    database = url.database if url.database.startswith("file:") else f"file:{url.database}"
    return url.set(database=database, query={**url.query, "mode": "ro", "uri": "true"})
