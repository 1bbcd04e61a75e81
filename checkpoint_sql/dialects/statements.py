"""Statement forms each engine spells its own way: upserts and insert-ignore, typed
NULLs in a UNION, a JSON array as a table to join on, a lookup join the planner
cannot turn into a scan, and the server's clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine

from checkpoint_sql.dialects import Family


def _insert(family: Family, table: sa.Table) -> Any:
    if family == "postgresql":
        return postgresql.insert(table)
    if family == "sqlite":
        return sqlite.insert(table)
    return mysql.insert(table)


def insert_ignoring_duplicates(family: Family, table: sa.Table) -> Insert:
    """INSERT that leaves an existing row with the same primary key untouched.

    On MySQL this is a no-op ON DUPLICATE KEY UPDATE rather than INSERT IGNORE, which
    would also turn truncation and other data errors into silent warnings.
    """
    stmt = _insert(family, table)
    key = list(table.primary_key.columns)
    if family == "mysql":
        return stmt.on_duplicate_key_update({key[0].name: key[0]})  # type: ignore[no-any-return]
    return stmt.on_conflict_do_nothing(index_elements=key)  # type: ignore[no-any-return]


def upsert(family: Family, table: sa.Table, update: Sequence[str]) -> Insert:
    """INSERT that overwrites the columns `update` of an existing row with the same key."""
    stmt = _insert(family, table)
    if family == "mysql":
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})  # type: ignore[no-any-return]
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=list(table.primary_key.columns),
        set_={c: stmt.excluded[c] for c in update},
    )


def upsert_adding(family: Family, table: sa.Table, add: Sequence[str], replace: Sequence[str]) -> Insert:
    """INSERT that, on an existing key, adds the new values of the columns `add` to the
    stored ones and overwrites the columns `replace`: merging counters in one statement."""
    stmt = _insert(family, table)
    new = stmt.inserted if family == "mysql" else stmt.excluded
    values = {c: table.c[c] + new[c] for c in add} | {c: new[c] for c in replace}
    if family == "mysql":
        return stmt.on_duplicate_key_update(values)  # type: ignore[no-any-return]
    return stmt.on_conflict_do_update(index_elements=list(table.primary_key.columns), set_=values)  # type: ignore[no-any-return]


def typed_null(family: Family, type_: TypeEngine[Any]) -> sa.ColumnElement[Any]:
    """NULL in one branch of a UNION: PostgreSQL needs to be told its type, MySQL
    cannot CAST to most types and infers it from the other branches."""
    return sa.null() if family == "mysql" else sa.cast(sa.null(), type_)


class _MySQLVersionPairs(FunctionElement[Any]):
    """MySQL/MariaDB's JSON_TABLE over a ``[[channel, version], ...]`` array."""

    name = "json_table"
    inherit_cache = True


@compiles(_MySQLVersionPairs)
def _compile_version_pairs(element: _MySQLVersionPairs, compiler: SQLCompiler, **kw: Any) -> str:
    (document,) = element.clauses
    return (
        f"JSON_TABLE({compiler.process(document, **kw)}, '$[*]' COLUMNS ("
        "channel VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[0]', "
        "version VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin PATH '$[1]'))"
    )


def version_pairs(
    family: Family, versions: sa.ColumnElement[Any], name: str
) -> tuple[sa.FromClause, sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """A checkpoint's ``versions`` (a JSON array of ``[channel, version]``) as rows to
    join the blobs table on: (from clause, channel, version as text).

    It lets one statement fetch a checkpoint with the blobs its versions point at.
    Each engine spells the JSON table differently; all may refer to a column of a
    table earlier in the FROM list (a lateral reference).
    """
    if family == "postgresql":
        # In the key columns' collation ("C"), or the primary key cannot serve the join.
        pairs = sa.func.jsonb_array_elements(versions).table_valued("value", name=name)
        channel = sa.collate(pairs.c.value.op("->>", return_type=sa.Text())(sa.literal_column("0")), "C")
        return pairs, channel, sa.collate(pairs.c.value.op("->>", return_type=sa.Text())(sa.literal_column("1")), "C")
    if family == "sqlite":
        pairs = sa.func.json_each(versions).table_valued("value", name=name)
        first = sa.func.json_extract(pairs.c.value, sa.literal_column("'$[0]'"))
        return pairs, first, sa.func.json_extract(pairs.c.value, sa.literal_column("'$[1]'"))
    pairs = _MySQLVersionPairs(versions).table_valued("channel", "version", name=name)
    return pairs, pairs.c.channel, pairs.c.version


def join_by_key(
    family: Family, keys: sa.FromClause, table: sa.Table, columns: Sequence[str]
) -> tuple[sa.FromClause, sa.FromClause]:
    """`keys` joined to the rows of `table` whose `columns` (its primary key) equal
    theirs, as one index lookup per key: (the join, the selectable to take `table`'s
    columns from).

    PostgreSQL cannot estimate how many rows a JSON table function yields and guesses
    100, so a plain join of the blobs table on them was planned as a sequential scan
    and hash join: 2 ms per read at a few thousand blobs, growing with the table.
    A LATERAL subquery admits only a nested loop over the primary key; its OFFSET 0
    keeps the planner from flattening it back into a plain join (written as a literal,
    so that a prepared statement's generic plan knows it). SQLite and
    MariaDB already look each key up by the primary key (and MariaDB has no LATERAL).
    """
    if family == "postgresql":
        found = (
            sa.select(table)
            .where(*(table.c[c] == keys.c[c] for c in columns))
            .offset(sa.literal_column("0", sa.Integer))
            .lateral(f"{table.name}_found")
        )
        return keys.join(found, sa.true()), found
    return keys.join(table, sa.and_(*(table.c[c] == keys.c[c] for c in columns))), table


def server_now_us(family: Family) -> sa.ColumnElement[int]:
    """The database's clock in microseconds since the Unix epoch, UTC, as SQL.

    Leases (`checkpoint_sql.core.leases`) compare expiry times written by processes on
    several hosts; reading one clock, the server's, keeps a host whose clock is off
    from taking a lease early. SQLite's clock is the host's, the only one there is.
    """
    if family == "postgresql":
        seconds: sa.ColumnElement[Any] = sa.func.extract("epoch", sa.func.clock_timestamp())
    elif family == "mysql":
        seconds = sa.func.unix_timestamp(sa.func.now(6))
    else:
        seconds = (sa.func.julianday("now") - 2440587.5) * 86400.0
    return sa.cast(seconds * 1_000_000, sa.BigInteger)
