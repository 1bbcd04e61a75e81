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
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.functions import FunctionElement
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


def json_filter(family: Family, key: str, value: Any) -> tuple[str, str, Any]:
    """How `json_member_equals` matches ``metadata[key] == value`` on this engine: the
    kind of comparison (part of the SQL's shape) and the two bound values (what locates
    the key, what it must equal).

    Equality is typed as in Python (``"1"`` does not match ``1``) and ``None`` matches
    null or absent. Callers must first reject keys containing ``"`` or ``\\``, which
    a JSON path in SQLite or MySQL cannot quote.
    """
    if value is None:
        kind = "null"
    elif isinstance(value, bool):
        kind = "true" if value else "false"
    elif isinstance(value, str):
        kind = "text"
    elif isinstance(value, (int, float)):
        kind = "number"
    else:
        kind = "json"
    locator = key if family == "postgresql" else f'$."{key}"'
    if family == "sqlite" and kind in ("text", "number"):
        return kind, locator, value  # json_extract yields SQL scalars to compare with
    return kind, locator, canonical_json(value)


def json_member_equals(
    family: Family,
    column: sa.ColumnElement[Any],
    kind: str,
    locator: sa.BindParameter[Any],
    value: sa.BindParameter[Any],
) -> sa.ColumnElement[bool]:
    """``column[key] == value`` for a top-level key of a JSON object, as planned by
    `json_filter` (both arguments bound, never spliced into the SQL)."""
    if family == "postgresql":
        member = column.op("->", return_type=postgresql.JSONB())(sa.cast(locator, sa.Text()))
        if kind == "null":
            return sa.or_(member.is_(None), member == sa.cast(sa.literal_column("'null'"), postgresql.JSONB()))
        return member == sa.cast(value, postgresql.JSONB())
    if family == "mysql":
        extracted = sa.func.json_extract(column, locator)
        if kind == "null":
            return sa.or_(extracted.is_(None), sa.func.json_type(extracted) == sa.literal_column("'NULL'"))
        # MariaDB's JSON is text in the column's collation: compare bytes, not letters.
        expected = sa.func.json_extract(sa.cast(value, sa.Text()), sa.literal_column("'$'"))
        return sa.cast(extracted, sa.LargeBinary()) == sa.cast(expected, sa.LargeBinary())
    json_kind = sa.func.json_type(column, locator)
    if kind == "null":
        return sa.or_(json_kind.is_(None), json_kind == sa.literal_column("'null'"))
    if kind in ("true", "false"):
        return json_kind == sa.literal_column(f"'{kind}'")
    extracted = sa.func.json_extract(column, locator)
    if kind == "text":
        return sa.and_(json_kind == sa.literal_column("'text'"), extracted == value)
    if kind == "number":
        return sa.and_(json_kind.in_([sa.literal_column("'integer'"), sa.literal_column("'real'")]), extracted == value)
    return sa.and_(
        json_kind.in_([sa.literal_column("'object'"), sa.literal_column("'array'")]),
        extracted == sa.func.json(value),
    )


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


def lone_writes_are_atomic(family: Family) -> bool:
    """Whether one write statement may run without an explicit transaction.

    Not on SQLite: a bare statement reads before it takes the write lock, and in WAL
    mode another writer committing in between fails it (SQLITE_BUSY_SNAPSHOT) without
    waiting; BEGIN IMMEDIATE takes the lock first.
    """
    return family != "sqlite"


def chains_writes(family: Family) -> bool:
    """Whether several INSERTs can be chained into one statement (PostgreSQL's
    data-modifying CTEs), making a put one round trip and one implicit transaction."""
    return family == "postgresql"


# --- transactions, migrations and errors ---------------------------------------------

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
