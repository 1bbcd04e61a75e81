"""Row-level work done in SQL, not through a saver: copying a thread of the official
savers (they have no `copy_thread`), building long histories and filler rows in bulk,
and measuring tables on disk.

Histories are built by copying a checkpoint row the saver itself stored, many times,
under generated ids that sort before every real uuid6 id (``00000000-0000-6000-8000-
<n>``): the saver's real checkpoints stay the latest, and every copy decodes like the
original (its channel versions point at blobs that exist).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa

from benchmarks.servers import Database

OFFICIAL_TABLES = {
    "sqlite": ("checkpoints", "writes"),
    "postgresql": ("checkpoints", "checkpoint_blobs", "checkpoint_writes"),
    "mysql": ("checkpoints", "checkpoint_blobs", "checkpoint_writes"),
}
OURS_TABLES = ("cpsql_checkpoints", "cpsql_blobs", "cpsql_writes")


@cache
def engine_of(db: Database) -> sa.Engine:
    return sa.create_engine(db.sa_url, poolclass=sa.pool.NullPool)


@cache
def _columns(db: Database, table: str) -> tuple[str, ...]:
    """Stored (not generated) columns of `table`."""
    inspector = sa.inspect(engine_of(db))
    return tuple(c["name"] for c in inspector.get_columns(table) if not c.get("computed"))


def _q(db: Database, name: str) -> str:
    return f"`{name}`" if db.engine == "mysql" else f'"{name}"'


def copy_official_thread(db: Database, source: str, target: str) -> None:
    """The official savers' rows of thread `source` copied under `target`, in SQL."""
    with engine_of(db).begin() as conn:
        for table in OFFICIAL_TABLES[db.engine]:
            columns = _columns(db, table)
            selected = [":target" if c == "thread_id" else _q(db, c) for c in columns]
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} ({', '.join(_q(db, c) for c in columns)}) "
                    f"SELECT {', '.join(selected)} FROM {table} WHERE thread_id = :source"
                ),
                {"source": source, "target": target},
            )


# --- long histories ---------------------------------------------------------------------------


def _fake_id(db: Database, n: str) -> str:
    """SQL for the generated checkpoint id of number `n` (sorts before real uuid6 ids)."""
    if db.engine == "sqlite":
        return f"printf('00000000-0000-6000-8000-%012d', {n})"
    if db.engine == "postgresql":
        return f"'00000000-0000-6000-8000-' || lpad(({n})::text, 12, '0')"
    return f"CONCAT('00000000-0000-6000-8000-', LPAD({n}, 12, '0'))"


def _numbers(db: Database, count: int) -> str:
    """A FROM clause yielding column ``n`` = 1..count."""
    if db.engine == "sqlite":
        recursive = f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {count})"
        return f"({recursive} SELECT n FROM seq) AS nums"
    if db.engine == "postgresql":
        return f"generate_series(1, {count}) AS nums(n)"
    return f"(SELECT seq AS n FROM seq_1_to_{count}) AS nums"


def _key_expr(db: Database, j: str) -> str:
    """SQL for a 16-byte key made from number `j` (filler threads of our tables)."""
    if db.engine == "sqlite":
        return f"CAST(printf('%016d', {j}) AS BLOB)"
    if db.engine == "postgresql":
        return f"decode(lpad(({j})::text, 32, '0'), 'hex')"
    return f"UNHEX(LPAD({j}, 32, '0'))"


def grow_history(
    db: Database, table: str, key_filter: dict[str, Any], source_id: str, count: int, *, offset: int = 0
) -> None:
    """Insert `count` copies of checkpoint row `source_id` (selected by `key_filter`
    equalities) with generated ids ``offset+1 .. offset+count``, each the parent of the
    next, all older than the real checkpoints."""
    if count <= 0:
        return
    columns = _columns(db, table)
    n = f"(nums.n + {offset})"
    selected = []
    for c in columns:
        if c == "checkpoint_id":
            selected.append(_fake_id(db, n))
        elif c == "parent_checkpoint_id":
            selected.append(f"CASE WHEN {n} > 1 THEN {_fake_id(db, f'{n} - 1')} ELSE NULL END")
        else:
            selected.append(f"src.{_q(db, c)}")
    where = " AND ".join(f"src.{_q(db, k)} = :{k}" for k in key_filter)
    with engine_of(db).begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO {table} ({', '.join(_q(db, c) for c in columns)}) "
                f"SELECT {', '.join(selected)} FROM {table} AS src CROSS JOIN {_numbers(db, count)} "
                f"WHERE {where} AND src.checkpoint_id = :source_id"
            ),
            {**key_filter, "source_id": source_id},
        )


def add_filler(
    db: Database, table: str, key_filter: dict[str, Any], source_id: str, threads: int, per_thread: int, *, ours: bool
) -> None:
    """Fill `table` with `threads` x `per_thread` copies of one checkpoint row under
    other threads (``filler-<j>``; our tables also get a 16-byte key per thread)."""
    columns = _columns(db, table)
    rows = threads * per_thread
    n = "nums.n"
    thread = f"(({n} - 1) / {per_thread})" if db.engine != "mysql" else f"(({n} - 1) DIV {per_thread})"
    selected = []
    for c in columns:
        if c == "checkpoint_id":
            selected.append(_fake_id(db, n))
        elif c == "parent_checkpoint_id":
            selected.append("NULL")
        elif c == "thread_key" and ours:
            selected.append(_key_expr(db, thread))
        elif c == "thread_id":
            cast = f"CAST({thread} AS TEXT)" if db.engine != "mysql" else f"CAST({thread} AS CHAR)"
            selected.append(f"'filler-' || {cast}" if db.engine != "mysql" else f"CONCAT('filler-', {cast})")
        else:
            selected.append(f"src.{_q(db, c)}")
    where = " AND ".join(f"src.{_q(db, k)} = :{k}" for k in key_filter)
    step = 100_000
    with engine_of(db).connect() as conn:
        for start in range(0, rows, step):
            chunk = min(step, rows - start)
            shifted = f"(SELECT n + {start} AS n FROM {_numbers(db, chunk)}) AS nums"
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} ({', '.join(_q(db, c) for c in columns)}) "
                    f"SELECT {', '.join(selected)} FROM {table} AS src CROSS JOIN {shifted} "
                    f"WHERE {where} AND src.checkpoint_id = :source_id"
                ),
                {**key_filter, "source_id": source_id},
            )
            conn.commit()


def row_count(db: Database, table: str) -> int:
    with engine_of(db).connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


# --- bytes on disk ------------------------------------------------------------------------------


def table_bytes(db: Database, tables: Sequence[str]) -> dict[str, int]:
    """Bytes each table takes on disk, indexes and out-of-line values included:
    SQLite's dbstat pages, PostgreSQL's `pg_total_relation_size`, InnoDB's data and index
    length after ANALYZE TABLE."""
    engine = engine_of(db)
    sizes: dict[str, int] = {}
    with engine.connect() as conn:
        for table in tables:
            if db.engine == "sqlite":
                # the table's b-tree and those of its indexes (autoindexes are named after it)
                value = conn.execute(
                    sa.text(
                        "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = :t "
                        "OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = :t AND type = 'index')"
                    ),
                    {"t": table},
                ).scalar_one()
            elif db.engine == "postgresql":
                value = conn.execute(
                    sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": table}
                ).scalar_one()
            else:
                conn.execute(sa.text(f"ANALYZE TABLE `{table}`")).all()
                value = conn.execute(
                    sa.text(
                        "SELECT data_length + index_length FROM information_schema.tables "
                        "WHERE table_schema = DATABASE() AND table_name = :t"
                    ),
                    {"t": table},
                ).scalar_one()
            sizes[table] = int(value or 0)
    return sizes


def sqlite_checkpoint_wal(db: Database) -> None:
    """Move the WAL into the main file, so dbstat and the file size tell the truth."""
    with engine_of(db).connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()


def postgres_vacuum(db: Database, tables: Sequence[str]) -> None:
    """VACUUM ANALYZE, so the visibility map and statistics are current before measuring."""
    engine = sa.create_engine(db.sa_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for table in tables:
            conn.exec_driver_sql(f'VACUUM ANALYZE "{table}"')
    engine.dispose()


def postgres_analyze(db: Database) -> None:
    """ANALYZE every table of the run's database: what autovacuum does on a production
    server as tables grow (and what invalidates plans psycopg's prepared statements cached
    while the tables were small)."""
    with _autocommit(db).connect() as conn:
        conn.exec_driver_sql("ANALYZE")


@cache
def _autocommit(db: Database) -> sa.Engine:
    return sa.create_engine(db.sa_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
