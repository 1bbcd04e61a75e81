"""Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB, in one place.

The rest of the package writes portable SQLAlchemy Core and asks this module for:
column types that index and compare the same way everywhere, the upsert and
insert-ignore forms, matching a metadata key in SQL, how a transaction begins, how
migrations are serialised between processes, and which driver errors mean "the
tables are not there".
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
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


def json_filters(family: Family, key: str, value: Any) -> list[tuple[str, str, Any]]:
    """How `json_member_equals` matches ``metadata[key] == value`` on this engine: one
    or more tests, each the kind of comparison (part of the SQL's shape) and the two
    bound values (what locates the member, what it must equal).

    Equality is as in Python and LangGraph's `InMemorySaver`, on every engine: numbers
    by value (``1`` matches ``1.0``, also inside objects and arrays), strings exactly
    (``"1"`` does not match ``1``), booleans only as booleans, objects and arrays
    member by member, and a top-level ``None`` matches null or absent. PostgreSQL's
    JSONB equality is exactly that; SQLite and MySQL compare JSON as text, so there a
    nested value becomes one test per member plus a test of each container's kind and
    size. Callers must first reject keys containing ``"`` or ``\\``, which a JSON
    path in SQLite or MySQL cannot quote.
    """
    if family == "postgresql":
        return [("null" if value is None else "json", key, canonical_json(value))]
    return list(_member_tests(f'$."{key}"', value, top=True))


def metadata_tests(family: Family, filter: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """`json_filters` of every key of a metadata filter, in order."""
    return [test for key, value in filter.items() for test in json_filters(family, key, value)]


def _member_tests(path: str, value: Any, *, top: bool = False) -> Iterator[tuple[str, str, Any]]:
    if value is None:
        yield ("null" if top else "is_null"), path, None
    elif isinstance(value, bool):
        yield ("true" if value else "false"), path, None
    elif isinstance(value, str):
        yield "text", path, value
    elif isinstance(value, (int, float)):
        yield "number", path, value
    elif isinstance(value, Mapping):
        yield "object", path, len(value)
        for member_key, member in value.items():
            yield from _member_tests(f'{path}."{member_key}"', member)
    else:
        yield "array", path, len(value)
        for i, member in enumerate(value):
            yield from _member_tests(f"{path}[{i}]", member)


def json_member_equals(
    family: Family,
    column: sa.ColumnElement[Any],
    kind: str,
    locator: sa.BindParameter[Any],
    value: sa.BindParameter[Any],
) -> sa.ColumnElement[bool]:
    """One test of `json_filters` on `column`, a JSON object (both arguments bound,
    never spliced into the SQL)."""
    if family == "postgresql":
        member = column.op("->", return_type=postgresql.JSONB())(sa.cast(locator, sa.Text()))
        if kind == "null":
            return sa.or_(member.is_(None), member == sa.cast(sa.literal_column("'null'"), postgresql.JSONB()))
        return member == sa.cast(value, postgresql.JSONB())
    if family == "mysql":
        extracted = sa.func.json_extract(column, locator)
        json_kind = sa.func.json_type(extracted)
        if kind == "null":
            return sa.or_(extracted.is_(None), json_kind == sa.literal_column("'NULL'"))
        if kind == "is_null":
            return json_kind == sa.literal_column("'NULL'")
        if kind in ("true", "false"):
            return sa.and_(
                json_kind == sa.literal_column("'BOOLEAN'"),
                sa.cast(extracted, sa.LargeBinary()) == sa.literal_column(f"'{kind}'"),
            )
        if kind == "text":
            # MariaDB's JSON is text in the column's collation: compare bytes, not letters.
            return sa.and_(
                json_kind == sa.literal_column("'STRING'"),
                sa.cast(sa.func.json_unquote(extracted), sa.LargeBinary()) == sa.cast(value, sa.LargeBinary()),
            )
        if kind == "number":
            return sa.and_(
                json_kind.in_([sa.literal_column("'INTEGER'"), sa.literal_column("'DOUBLE'")]),
                sa.cast(extracted, mysql.DOUBLE()) == sa.cast(value, mysql.DOUBLE()),
            )
        size = sa.func.json_length(column, locator)
        return sa.and_(json_kind == sa.literal_column(f"'{kind.upper()}'"), size == value)
    json_kind = sa.func.json_type(column, locator)
    if kind == "null":
        return sa.or_(json_kind.is_(None), json_kind == sa.literal_column("'null'"))
    if kind in ("is_null", "true", "false", "object", "array"):
        test = json_kind == sa.literal_column(f"'{'null' if kind == 'is_null' else kind}'")
        if kind in ("object", "array"):
            members = sa.func.json_each(column, locator).table_valued("key")
            return sa.and_(test, sa.select(sa.func.count()).select_from(members).scalar_subquery() == value)
        return test
    extracted = sa.func.json_extract(column, locator)
    if kind == "text":
        return sa.and_(json_kind == sa.literal_column("'text'"), extracted == value)
    return sa.and_(json_kind.in_([sa.literal_column("'integer'"), sa.literal_column("'real'")]), extracted == value)


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
    keeps the planner from flattening it back into a plain join. SQLite and
    MariaDB already look each key up by the primary key (and MariaDB has no LATERAL).
    """
    if family == "postgresql":
        found = (
            sa.select(table).where(*(table.c[c] == keys.c[c] for c in columns)).offset(0).lateral(f"{table.name}_found")
        )
        return keys.join(found, sa.true()), found
    return keys.join(table, sa.and_(*(table.c[c] == keys.c[c] for c in columns))), table


def page_holds_keys_only(family: Family) -> bool:
    """Whether a read's page of checkpoints (a CTE its parts refer to) should hold
    primary keys only, each part joining back to the rows.

    MariaDB materializes a CTE once per reference, and one holding BLOB or TEXT
    columns goes to an on-disk temporary table: three per read, 1.5 ms, against
    0.5 ms keyed. Elsewhere the page holds whole rows: SQLite, given the keys, plans
    the join back as a scan of the checkpoints table probing the page (2 ms per read
    at 40k checkpoints), and PostgreSQL needs neither.
    """
    return family == "mysql"


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
    its DDL commits implicitly; on a Galera cluster, whose nodes do not share named
    locks, a row in a replicated table (`_galera_migration_lock`). SQLite: the
    transaction's own write lock (the caller has begun it with BEGIN IMMEDIATE).
    """
    if family == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
        yield
    elif family == "mysql" and is_galera(conn):
        with _galera_migration_lock(conn, name[:64]):
            yield
    elif family == "mysql":
        got = conn.execute(sa.text("SELECT GET_LOCK(:name, 120)"), {"name": name[:64]}).scalar()
        if got != 1:
            raise TimeoutError(f"could not take the migration lock {name!r} within 120 s")
        try:
            yield
        finally:
            if not conn.invalidated:  # else the session ended, and its locks with it
                conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name[:64]})
    else:
        yield


_GALERA_LOCKS = "checkpoint_sql_migration_locks"
_LOCK_WAIT, _LOCK_LEASE = 120.0, 60.0
_TAKEN = (1062, 1213)  # the row exists (ER_DUP_ENTRY), or another node inserted it first (certification)


@contextmanager
def _galera_migration_lock(conn: Connection, name: str) -> Iterator[None]:
    """A migration lock every node of a Galera cluster honours.

    `GET_LOCK` is local to one node, so two processes migrating through two nodes would
    both get it. Instead the lock is a row, committed on its own and so replicated:
    inserting it succeeds on one node only (a rival insert fails as a duplicate, or as a
    certification conflict when two nodes insert at once). The row names its holder,
    a session on a node (`_holder_is_gone`), so a lock whose node left the cluster or
    whose session ended is taken over at once; past its lease it is taken over anyway
    (a holder elsewhere whose client died). Once a node has applied the release, it has
    also applied the holder's earlier commits (Galera applies them in order), so the
    next holder reads the version the previous one left.
    """
    conn.exec_driver_sql("COMMIT")  # the caller's transaction: migrations' DDL commits implicitly anyway
    if not sa.inspect(conn).has_table(_GALERA_LOCKS):
        # Even IF NOT EXISTS is DDL, replicated in total order, and it aborts other nodes'
        # transactions on the table (a rival's lock insert or release): only when missing.
        conn.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {_GALERA_LOCKS} (name VARCHAR(64) NOT NULL PRIMARY KEY, "
            "holder VARCHAR(100) NOT NULL, expires_at DOUBLE NOT NULL)"
        )
    node = str(conn.exec_driver_sql("SHOW STATUS LIKE 'wsrep_gcomm_uuid'").one()[1])
    holder = f"{node}/{conn.exec_driver_sql('SELECT CONNECTION_ID()').scalar()}"
    params = {"name": name, "holder": holder}
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        now = time.time()
        try:
            conn.execute(
                sa.text(f"INSERT INTO {_GALERA_LOCKS} (name, holder, expires_at) VALUES (:name, :holder, :until)"),
                {**params, "until": now + _LOCK_LEASE},
            )
            break
        except DBAPIError as exc:
            if getattr(exc.orig, "args", (None,))[0] not in _TAKEN:
                raise
        held = conn.execute(
            sa.text(f"SELECT holder, expires_at FROM {_GALERA_LOCKS} WHERE name = :name"), params
        ).first()
        if held is not None and (held[1] < now or _holder_is_gone(conn, str(held[0]), node)):
            conn.execute(
                sa.text(f"DELETE FROM {_GALERA_LOCKS} WHERE name = :name AND holder = :stale"),
                {**params, "stale": held[0]},
            )
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not take the migration lock {name!r} on the Galera cluster in {_LOCK_WAIT:g} s")
        time.sleep(0.1)
    try:
        yield
    finally:
        if not conn.invalidated:  # else the session is gone, and `_holder_is_gone` frees the lock
            conn.execute(sa.text(f"DELETE FROM {_GALERA_LOCKS} WHERE name = :name AND holder = :holder"), params)


def _holder_is_gone(conn: Connection, holder: str, node: str) -> bool:
    """Whether the session holding a Galera migration lock is gone: its node is no
    longer a member of the cluster, or it is a session of this node that has ended."""
    holder_node, _, session = holder.partition("/")
    members = {str(row[0]) for row in conn.exec_driver_sql("SELECT node_uuid FROM mysql.wsrep_cluster_members")}
    if holder_node not in members:
        return True
    if holder_node != node or not session.isdigit():
        return False
    alive = conn.execute(
        sa.text("SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = :id"), {"id": int(session)}
    ).scalar()
    return alive == 0


def is_missing_table(family: Family, exc: DBAPIError) -> bool:
    """Whether a driver error means one of our tables does not exist."""
    if family == "postgresql":
        return getattr(exc.orig, "sqlstate", None) == "42P01"
    if family == "mysql":
        args: tuple[Any, ...] = getattr(exc.orig, "args", ())
        return len(args) > 0 and args[0] == 1146
    return "no such table" in str(exc.orig)


def is_pooled_prepared_statement(family: Family, exc: DBAPIError) -> bool:
    """Whether a driver error is psycopg's prepared statement missing, already there or
    different in the server session at hand: what a transaction pooler does to
    server-side prepared statements (named ``_pg3_N`` by psycopg)."""
    return family == "postgresql" and 'prepared statement "_pg3_' in str(exc.orig)


# --- stores ---------------------------------------------------------------------------
# What the companion stores (`checkpoint_sql.stores`) need beyond the saver's pieces:
# microsecond UTC timestamps, short indexable byte strings, embedding vectors, JSON
# members addressed by path and compared with their JSON type, cosine similarity in
# SQL, additive upserts, read-only transactions and read-only SQLite files.

JsonPath = tuple[str | int, ...]
"""A member of a JSON document: object keys and array indexes (negative: from the end).
Keys must not contain ``"`` or ``\\``, which SQLite's and MySQL's path syntax cannot quote."""
JsonKind = Literal["object", "array", "string", "number", "boolean", "null"]
Comparison = Literal["eq", "gt", "ge", "lt", "le"]

_SQLITE_KINDS: dict[str, tuple[str, ...]] = {
    "object": ("object",),
    "array": ("array",),
    "string": ("text",),
    "number": ("integer", "real"),
    "boolean": ("true", "false"),
    "null": ("null",),
}
_MYSQL_KINDS: dict[str, tuple[str, ...]] = {
    "object": ("OBJECT",),
    "array": ("ARRAY",),
    "string": ("STRING",),
    "number": ("INTEGER", "UNSIGNED INTEGER", "DOUBLE", "DECIMAL"),
    "boolean": ("BOOLEAN",),
    "null": ("NULL",),
}


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time to the microsecond, stored as naive UTC and read back aware.

    MySQL's plain DATETIME drops fractions of a second, which millisecond TTLs and
    "events after t" need. Naive values given to it are taken to be UTC.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


def short_bytes(length: int) -> TypeEngine[bytes]:
    """At most `length` bytes, compared byte by byte (no collation, no pad-space rule)
    and indexable on every engine: VARBINARY on MySQL, whose BLOBs cannot be keys."""
    return sa.LargeBinary(length).with_variant(mysql.VARBINARY(length), *_MYSQL)


class Vector(TypeDecorator[list[float]]):
    """An embedding: ``real[]`` on PostgreSQL, so that SQL can score it without an
    extension; little-endian float32 bytes elsewhere, the layout sqlite-vec reads."""

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(postgresql.REAL()))
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.LONGBLOB())
        return dialect.type_descriptor(sa.LargeBinary())

    def process_bind_param(self, value: Sequence[float] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return [float(x) for x in value]
        return float32_bytes(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> list[float] | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return [float(x) for x in value]
        return list(struct.unpack(f"<{len(value) // 4}f", value))


def float32_bytes(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def _path_text(path: JsonPath) -> str:
    """`path` in SQLite's and MySQL's syntax (negative indexes: SQLite's ``[#-1]``)."""
    parts = ["$"]
    for step in path:
        if isinstance(step, str):
            parts.append(f'."{step}"')
        else:
            parts.append(f"[{step}]" if step >= 0 else f"[#{step}]")
    return "".join(parts)


def _sqlite_path(path: JsonPath) -> sa.ColumnElement[str]:
    return sa.literal(_path_text(path), sa.Text())


def _mysql_path(column: sa.ColumnElement[Any], path: JsonPath) -> sa.ColumnElement[str]:
    """`path` for MySQL/MariaDB. A negative index becomes a per-row computed one:
    MariaDB 10.11 resolves ``[last]`` and ``[-1]`` against the first row's array and
    reuses that position for every later row."""
    if not any(isinstance(step, int) and step < 0 for step in path):
        return sa.literal(_path_text(path), sa.Text())
    built: sa.ColumnElement[str] = sa.literal("$", sa.Text())
    for step in path:
        if isinstance(step, int) and step < 0:
            index = sa.func.json_length(column, built) + step
            built = sa.case((index >= 0, sa.func.concat(built, "[", index, "]")))
        else:
            built = sa.func.concat(built, _path_text((step,))[1:])
    return built


def _pg_member(column: sa.ColumnElement[Any], path: JsonPath, *, as_text: bool = False) -> sa.ColumnElement[Any]:
    steps = sa.literal([str(step) for step in path], postgresql.ARRAY(sa.Text()))
    if as_text:
        return column.op("#>>", return_type=sa.Text())(steps)
    return column.op("#>", return_type=postgresql.JSONB())(steps)


def _mysql_member(column: sa.ColumnElement[Any], path: JsonPath) -> sa.ColumnElement[Any]:
    return sa.func.json_extract(column, _mysql_path(column, path))


def json_kind_is(
    family: Family, column: sa.ColumnElement[Any], path: JsonPath, kind: JsonKind, *, or_absent: bool = False
) -> sa.ColumnElement[bool]:
    """Whether the member at `path` is of JSON type `kind` (or, with `or_absent`, is
    missing). NULL or false when it is missing and `or_absent` is not set."""
    found: sa.ColumnElement[Any]
    names: tuple[str, ...]
    if family == "postgresql":
        found, names = sa.func.jsonb_typeof(_pg_member(column, path)), (kind,)
    elif family == "mysql":
        found, names = sa.func.json_type(_mysql_member(column, path)), _MYSQL_KINDS[kind]
    else:
        found, names = sa.func.json_type(column, _sqlite_path(path)), _SQLITE_KINDS[kind]
    if or_absent:
        found = sa.func.coalesce(found, "")
        names = (*names, "")
    return found.in_(names)


def json_text(family: Family, column: sa.ColumnElement[Any], path: JsonPath) -> sa.ColumnElement[str]:
    """The string member at `path` as SQL text (NULL if absent)."""
    if family == "postgresql":
        return _pg_member(column, path, as_text=True)
    if family == "mysql":
        return sa.func.json_unquote(_mysql_member(column, path), type_=sa.Text())
    return sa.func.json_extract(column, _sqlite_path(path), type_=sa.Text())


def json_compare(
    family: Family, column: sa.ColumnElement[Any], path: JsonPath, comparison: Comparison, value: str | float | bool
) -> sa.ColumnElement[bool]:
    """``member <comparison> value`` where the member at `path` has the JSON type of
    `value`: numbers compare as numbers, strings by code point, booleans only for
    equality. A member of another type, or none, does not match (false or NULL)."""
    compare = {"eq": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}[comparison]
    if isinstance(value, bool):
        if comparison != "eq":
            raise ValueError("booleans only compare for equality")
        if family == "sqlite":
            return sa.func.json_type(column, _sqlite_path(path)) == str(value).lower()
        return sa.and_(
            json_kind_is(family, column, path, "boolean"), json_text(family, column, path) == str(value).lower()
        )
    kind: JsonKind = "string" if isinstance(value, str) else "number"
    member: sa.ColumnElement[Any]
    expected: sa.ColumnElement[Any]
    if family == "postgresql":
        if kind == "number":
            member = _pg_member(column, path)
            expected = sa.cast(sa.literal(canonical_json(value), sa.Text()), postgresql.JSONB())
        else:
            member = _pg_member(column, path, as_text=True).collate("C")
            expected = sa.literal(value, sa.Text())
    elif family == "mysql":
        extracted = _mysql_member(column, path)
        if kind == "number":
            member, expected = sa.cast(extracted, mysql.DOUBLE()), sa.literal(float(value), sa.Float())
        else:
            member = sa.cast(sa.func.json_unquote(extracted), sa.LargeBinary())
            expected = sa.cast(sa.literal(value, sa.Text()), sa.LargeBinary())
    else:
        member = sa.func.json_extract(column, _sqlite_path(path))
        expected = sa.literal(value)
    return sa.and_(json_kind_is(family, column, path, kind), member.op(compare, is_comparison=True)(expected))


def json_length(family: Family, column: sa.ColumnElement[Any], path: JsonPath) -> sa.ColumnElement[int]:
    """How many elements (array) or members (object) the member at `path` has; check
    its kind too, as scalars count as NULL on some engines and 1 on MySQL."""
    if family == "mysql":
        return sa.func.json_length(column, _mysql_path(column, path))
    if family == "postgresql":
        member = _pg_member(column, path)
        keys = sa.func.jsonb_object_keys(member).table_valued("k")
        return sa.case(
            (sa.func.jsonb_typeof(member) == "array", sa.func.jsonb_array_length(member)),
            (sa.func.jsonb_typeof(member) == "object", sa.select(sa.func.count()).select_from(keys).scalar_subquery()),
        )
    each = sa.func.json_each(column, _sqlite_path(path)).table_valued("key")
    container = sa.or_(json_kind_is(family, column, path, "array"), json_kind_is(family, column, path, "object"))
    return sa.case((container, sa.select(sa.func.count()).select_from(each).scalar_subquery()))


def sqlite_vec_loadable() -> bool:
    """Whether this Python can load sqlite-vec into SQLite (its `sqlite3` module must be
    built with extension loading, which some distributions, and pyenv by default, leave out)."""
    import importlib.util
    import sqlite3

    return hasattr(sqlite3.Connection, "enable_load_extension") and importlib.util.find_spec("sqlite_vec") is not None


def load_sqlite_vec(conn: Connection) -> None:
    """Load sqlite-vec into the pooled SQLite connection under `conn`, once per connection."""
    record = conn.connection
    if record.info.get("sqlite_vec"):
        return
    import sqlite_vec  # type: ignore[import-untyped]

    raw = record.dbapi_connection
    path = sqlite_vec.loadable_path()
    if isinstance(raw, sa.engine.AdaptedConnection):  # aiosqlite: run on its worker thread
        raw.run_async(lambda driver: driver.enable_load_extension(True))
        raw.run_async(lambda driver: driver.load_extension(path))
        raw.run_async(lambda driver: driver.enable_load_extension(False))
    else:
        raw.enable_load_extension(True)  # type: ignore[union-attr]
        raw.load_extension(path)  # type: ignore[union-attr]
        raw.enable_load_extension(False)  # type: ignore[union-attr]
    record.info["sqlite_vec"] = True


def cosine_similarity(
    family: Family,
    embedding: sa.ColumnElement[Any],
    norm: sa.ColumnElement[float],
    query: Sequence[float],
    query_norm: float,
) -> sa.ColumnElement[float]:
    """Cosine similarity of each stored embedding with `query`, computed by the engine:
    an ``unnest`` dot product over ``real[]`` on PostgreSQL (no extension needed),
    sqlite-vec's ``vec_distance_cosine`` on SQLite (after `load_sqlite_vec`). Zero
    vectors score 0. MySQL/MariaDB have no vector arithmetic: callers score there."""
    if query_norm == 0:
        return sa.literal(0.0, sa.Float())
    if family == "postgresql":
        pairs = sa.func.unnest(embedding, sa.literal(list(query), postgresql.ARRAY(postgresql.REAL()))).table_valued(
            "a", "b"
        )
        pairs = pairs.render_derived()
        dot = sa.select(sa.func.sum(pairs.c.a * pairs.c.b)).scalar_subquery()
        score = dot / (norm * query_norm)
    elif family == "sqlite":
        score = 1.0 - sa.func.vec_distance_cosine(embedding, sa.literal(float32_bytes(query), sa.LargeBinary()))
    else:
        raise ValueError("MySQL/MariaDB cannot score vectors in SQL")
    # No vector (an outer join's missing row): NULL, which sqlite-vec would refuse to read.
    return sa.case((norm.is_(None), sa.null()), (norm == 0, sa.literal(0.0, sa.Float())), else_=score)


def upsert_adding(family: Family, table: sa.Table, add: Sequence[str], replace: Sequence[str]) -> Insert:
    """INSERT that, on an existing key, adds the new values of the columns `add` to the
    stored ones and overwrites the columns `replace`: merging counters in one statement."""
    stmt = _insert(family, table)
    new = stmt.inserted if family == "mysql" else stmt.excluded
    values = {c: table.c[c] + new[c] for c in add} | {c: new[c] for c in replace}
    if family == "mysql":
        return stmt.on_duplicate_key_update(values)  # type: ignore[no-any-return]
    return stmt.on_conflict_do_update(index_elements=list(table.primary_key.columns), set_=values)  # type: ignore[no-any-return]


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


# --- admin ---------------------------------------------------------------------------
# What the `checkpoint-sql` command asks of each engine beyond the saver's own SQL:
# sizes and server settings, for `threads`, `stats` and `doctor`.


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


def reads_need_snapshot(family: Family) -> bool:
    """Whether a read of several statements must run in ``snapshot`` mode to see one
    consistent state (an export, a history): the servers otherwise run READ COMMITTED;
    a SQLite read transaction already is a snapshot, and its snapshot mode would take
    the write lock, stalling every writer for the length of the read."""
    return family != "sqlite"


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


def is_galera(conn: sa.Connection) -> bool:
    """Whether `conn` is a session on a Galera node (wsrep replication on)."""
    row = conn.exec_driver_sql("SHOW VARIABLES LIKE 'wsrep_on'").first()
    return row is not None and str(row[1]).upper() == "ON"
