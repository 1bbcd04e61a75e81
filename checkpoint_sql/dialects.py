"""Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB, in one place.

The rest of the package writes portable SQLAlchemy Core and asks this module for:
column types that index and compare the same way everywhere, the upsert and
insert-ignore forms, matching a metadata key in SQL, how a transaction begins, how
migrations are serialised between processes, and which driver errors mean "the
tables are not there".
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator, TypeEngine

Family = Literal["sqlite", "postgresql", "mysql"]

_MYSQL = ("mysql", "mariadb")


def family_of(dialect_name: str) -> Family:
    """The engine family of a SQLAlchemy dialect name; MariaDB counts as MySQL."""
    if dialect_name == "sqlite":
        return "sqlite"
    if dialect_name == "postgresql":
        return "postgresql"
    if dialect_name in _MYSQL:
        return "mysql"
    raise ValueError(f"unsupported SQLAlchemy dialect {dialect_name!r}")


# --- column types -------------------------------------------------------------------


def key_bytes() -> TypeEngine[bytes]:
    """A 16-byte hash key. Ids of any length are keyed by their hash, because
    PostgreSQL's btree refuses entries over ~2.7 kB and InnoDB keys stop at 3072 bytes."""
    return sa.LargeBinary(16).with_variant(mysql.BINARY(16), *_MYSQL)


def ascii_key(length: int) -> TypeEngine[str]:
    """A short identifier (checkpoint id, version) that sorts and compares by bytes.

    Checkpoint ids are uuid6 strings whose byte order is their time order; a locale
    collation (PostgreSQL's default) or a case-insensitive one (MySQL's default)
    would break `before=` and "latest".
    """
    return (
        sa.String(length)
        .with_variant(sa.String(length, collation="C"), "postgresql")
        .with_variant(mysql.VARCHAR(length, charset="ascii", collation="ascii_bin"), *_MYSQL)
    )


def unicode_key(length: int) -> TypeEngine[str]:
    """A short user-chosen name in a key (channel, task id): exact, case-sensitive."""
    return (
        sa.String(length)
        .with_variant(sa.String(length, collation="C"), "postgresql")
        .with_variant(mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), *_MYSQL)
    )


def long_text() -> TypeEngine[str]:
    """Unbounded text that is never indexed (thread ids, namespaces, task paths)."""
    return sa.Text().with_variant(mysql.MEDIUMTEXT(charset="utf8mb4", collation="utf8mb4_bin"), *_MYSQL)


def payload() -> TypeEngine[bytes]:
    """Serialized bytes; MySQL's plain BLOB would stop at 64 kB."""
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the one text form of a value, so that
    SQLite and MariaDB (which compare JSON as text) match equal documents."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class JSONDocument(TypeDecorator[Any]):
    """A JSON object column: JSONB on PostgreSQL, canonical JSON text elsewhere."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value  # JSONB serializes (and normalises) it itself
        return canonical_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.loads(value)


# --- statements ---------------------------------------------------------------------


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


def json_member_equals(family: Family, column: sa.ColumnElement[Any], key: str, value: Any) -> sa.ColumnElement[bool]:
    """`column[key] == value` for a top-level key of a JSON object, typed as in Python
    (``"1"`` does not match ``1``; ``None`` matches null and absent). The key and the
    value are bound parameters; callers must first reject keys containing ``"`` or
    ``\\``, which a JSON path in SQLite or MySQL cannot quote."""
    if family == "postgresql":
        member = column.op("->", return_type=postgresql.JSONB())(sa.literal(key, sa.Text()))
        if value is None:
            return sa.or_(member.is_(None), member == sa.cast(sa.literal("null"), postgresql.JSONB()))
        return member == sa.cast(sa.literal(canonical_json(value)), postgresql.JSONB())
    path = sa.literal(f'$."{key}"', sa.Text())
    if family == "mysql":
        extracted = sa.func.json_extract(column, path)
        if value is None:
            return sa.or_(extracted.is_(None), sa.func.json_type(extracted) == "NULL")
        # MariaDB's JSON is text in the column's collation: compare bytes, not letters.
        expected = sa.func.json_extract(sa.literal(canonical_json(value), sa.Text()), "$")
        return sa.cast(extracted, sa.LargeBinary()) == sa.cast(expected, sa.LargeBinary())
    kind = sa.func.json_type(column, path)
    if value is None:
        return sa.or_(kind.is_(None), kind == "null")
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    extracted = sa.func.json_extract(column, path)
    if isinstance(value, str):
        return sa.and_(kind == "text", extracted == sa.literal(value, sa.Text()))
    if isinstance(value, (int, float)):
        return sa.and_(kind.in_(("integer", "real")), extracted == sa.literal(value))
    return sa.and_(
        kind.in_(("object", "array")), extracted == sa.func.json(sa.literal(canonical_json(value), sa.Text()))
    )


# --- transactions, migrations and errors ---------------------------------------------


def begin_sql(family: Family, *, write: bool, snapshot: bool = False) -> str | None:
    """What to run first in a transaction, if anything.

    SQLite: a writer takes the write lock up front (BEGIN IMMEDIATE), so it waits on
    `busy_timeout` instead of failing with "database is locked" when it upgrades a
    read lock; a reader opens a snapshot so its statements agree. Elsewhere the
    transaction begins implicitly, in READ COMMITTED unless `snapshot` asks for one
    consistent view (operations that read rows and then delete exactly those).
    """
    if family == "sqlite":
        return "BEGIN IMMEDIATE" if write else "BEGIN"
    return "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ" if snapshot else None


@contextmanager
def migration_lock(family: Family, conn: Connection, name: str) -> Iterator[None]:
    """Hold a lock that serialises schema migrations of `name` across processes.

    PostgreSQL: a transaction-scoped advisory lock. MySQL: a named session lock, since
    its DDL commits implicitly. SQLite: the transaction's own write lock (the caller
    has begun it with BEGIN IMMEDIATE).
    """
    if family == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
        yield
    elif family == "mysql":
        got = conn.execute(sa.text("SELECT GET_LOCK(:name, 120)"), {"name": name[:64]}).scalar()
        if got != 1:
            raise TimeoutError(f"could not take the migration lock {name!r} within 120 s")
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name[:64]})
    else:
        yield


def is_missing_table(family: Family, exc: DBAPIError) -> bool:
    """Whether a driver error means one of our tables does not exist."""
    if family == "postgresql":
        return getattr(exc.orig, "sqlstate", None) == "42P01"
    if family == "mysql":
        args: tuple[Any, ...] = getattr(exc.orig, "args", ())
        return len(args) > 0 and args[0] == 1146
    return "no such table" in str(exc.orig)
