"""What the hot path promises on each engine: reads that look blobs up by key however
large the tables grow, no on-disk temporary tables on MariaDB, a write transaction
that fails part-way stores nothing on either API, and SQLite connections that close
with the saver."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from checkpoint_sql import SchemaNotReadyError, SQLSaver
from checkpoint_sql.core.ids import key_of
from checkpoint_sql.core.links import Link
from tests.conftest import fresh_database, require
from tests.helpers import checkpoint, config, count, put_chain


def _read_params(thread_id: str) -> dict[str, Any]:
    return {"tkey": key_of(thread_id), "nkey": key_of("")}


def _saver_on(engine: str, tmp_path: Path) -> Iterator[SQLSaver]:
    require(engine)
    with fresh_database(engine, tmp_path) as url, SQLSaver.from_conn_string(url) as saver:
        saver.setup()
        yield saver


@pytest.fixture
def mariadb_saver(tmp_path: Path) -> Iterator[SQLSaver]:
    yield from _saver_on("mysql", tmp_path)


def _read_plan(saver: SQLSaver, statement: Any, params: dict[str, Any]) -> str:
    """The engine's plan for one read, as text."""
    with saver.db.sync_engine.connect() as conn:
        compiled = statement.compiled(conn.dialect)
        explain = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN ", "mysql": "EXPLAIN "}[saver.db.family]
        if saver.db.family == "postgresql":
            for table in (saver.tables.checkpoints, saver.tables.blobs):
                conn.exec_driver_sql(f"ANALYZE {table.name}")
        return "\n".join(repr(r) for r in conn.exec_driver_sql(explain + compiled.sql, compiled.bind(params)))


def test_a_read_looks_checkpoints_and_blobs_up_by_key_however_many_there_are(saver: SQLSaver) -> None:
    for t in range(60):
        put_chain(saver, f"filler-{t}", 5)
    put_chain(saver, "t", 3)
    latest = _read_plan(saver, saver._st.read_latest, _read_params("t"))
    page = _read_plan(
        saver,
        saver._st.list_page(saver._list_plan(config("t"), None, None, 10).shape),
        {**_read_params("t"), "limit": 10},
    )
    for plan in (latest, page):
        cp, bl = saver.tables.checkpoints.name, saver.tables.blobs.name
        if saver.db.family == "sqlite":
            assert f"SCAN {cp}" not in plan and f"SCAN {bl}" not in plan, plan
        elif saver.db.family == "postgresql":
            assert f"Seq Scan on {cp}" not in plan and f"Seq Scan on {bl}" not in plan, plan
            assert f"Index Scan using {bl}_pkey" in plan, plan
        else:
            assert f"'{cp}', 'ALL'" not in plan and f"'{bl}', 'ALL'" not in plan, plan


def test_mariadb_reads_need_no_on_disk_temporary_table(mariadb_saver: SQLSaver) -> None:
    saver = mariadb_saver
    put_chain(saver, "t", 3)
    with saver.db.sync_engine.connect() as conn:

        def disk_tables() -> int:
            row = conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Created_tmp_disk_tables'").one()
            return int(row[1])

        before = disk_tables()
        rows = saver._st.read_latest.rows(Link.of(conn), _read_params("t"))
        created = disk_tables() - before
    assert rows, "the checkpoint was read"
    assert created == 0


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_a_write_transaction_failing_part_way_stores_nothing(db_url: str, api: str) -> None:
    async with SQLSaver.from_conn_string(db_url) as saver:
        await saver.asetup()
        with saver.db.sync_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {saver.tables.writes.name}"))  # the last insert will fail
        args = (config("t"), checkpoint({"a": 1}), {}, {"a": 1}, [("task", "a", 2)])
        with pytest.raises(SchemaNotReadyError, match="call setup"):
            if api == "sync":
                saver.put_full(*args)
            else:
                await saver.aput_full(*args)
        assert count(saver, "checkpoints") == 0
        assert count(saver, "blobs") == 0
        saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})  # the connection is usable after it
        assert count(saver, "checkpoints") == 1


def test_a_put_of_more_rows_than_one_insert_holds_stores_every_row(saver: SQLSaver) -> None:
    """Rows go in INSERTs of `ROWS_PER_INSERT`; on MariaDB a transaction's INSERTs
    travel as one query, so each must bind under names of its own."""
    values = {f"c{i}": i for i in range(120)}
    writes = [("task", f"w{i}", i) for i in range(130)]
    stored = saver.put_full(config("t"), checkpoint(values), {}, dict.fromkeys(values, 1), writes)
    found = saver.get_tuple(stored)
    assert found is not None
    assert found.checkpoint["channel_values"] == values
    assert found.pending_writes == [("task", f"w{i}", i) for i in range(130)]


def _open_handles(path: Path) -> int:
    """File descriptors of this process open on `path` (Linux)."""
    fds = Path("/proc/self/fd")
    found = 0
    for fd in fds.iterdir():
        try:
            if os.path.realpath(fd) == str(path.resolve()):
                found += 1
        except OSError:
            continue
    return found


def test_a_sqlite_saver_closes_the_connections_it_holds(tmp_path: Path) -> None:
    require("sqlite")
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to see open files")
    path = tmp_path / "held.db"
    with SQLSaver.from_conn_string(f"sqlite:///{path}") as saver:
        saver.setup()
        put_chain(saver, "t", 3)
        assert saver.get_tuple(config("t")) is not None
        assert _open_handles(path) > 0
    assert _open_handles(path) == 0
