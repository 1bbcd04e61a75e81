"""Getting connected: URLs and drivers, the embedded default, sharing engines, and the
errors a user sees when the server is away or the tables are missing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from checkpoint_sql import ConfigurationError, EngineOptions, EngineUnreachableError, SchemaNotReadyError, SQLSaver
from checkpoint_sql.core import engines
from tests.conftest import admin_url, fresh_database, require
from tests.helpers import checkpoint, config


@pytest.mark.parametrize(
    ("url", "sync", "async_"),
    [
        ("sqlite:///x.db", "sqlite+pysqlite", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+psycopg", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg", "postgresql+psycopg"),
        ("mysql://u@h/db", "mysql+pymysql", "mysql+asyncmy"),
        ("mariadb://u@h/db", "mariadb+pymysql", "mariadb+asyncmy"),
        ("mysql+asyncmy://u@h/db", "mysql+pymysql", "mysql+asyncmy"),
    ],
)
def test_plain_scheme_names_get_a_sync_and_an_async_driver(url: str, sync: str, async_: str) -> None:
    sync_url, async_url = engines.driver_pair(engines.resolve(url))
    assert (sync_url.drivername, async_url.drivername) == (sync, async_)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://u@h/db", "unsupported database 'oracle'"),
        ("postgresql+asyncpg://u:secret@h/db", "driver 'asyncpg' is not supported"),
        ("not a url", "cannot parse database URL"),
    ],
)
def test_unsupported_urls_are_refused_without_showing_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as error:
        SQLSaver(url)
    assert "secret" not in str(error.value)


def test_without_a_url_the_env_var_then_the_embedded_file_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv(engines.URL_ENV_VAR, raising=False)
    with SQLSaver() as saver:
        saver.setup()
        saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
    assert (tmp_path / "data" / "checkpoint_sql" / "checkpoints.db").exists()
    assert engines.default_sqlite_path() == tmp_path / "data" / "checkpoint_sql" / "checkpoints.db"

    monkeypatch.setenv(engines.URL_ENV_VAR, f"sqlite:///{tmp_path}/from-env.db")
    with SQLSaver.from_conn_string() as saver:
        saver.setup()
    assert (tmp_path / "from-env.db").exists()


def test_an_unreachable_server_is_one_clear_error_with_the_password_masked() -> None:
    saver = SQLSaver("postgresql://app:hunter2@127.0.0.1:1/db")
    with pytest.raises(
        EngineUnreachableError, match=r"cannot connect to postgresql://app:\*\*\*@127.0.0.1:1/db"
    ) as error:
        saver.get_tuple(config("t"))
    assert "hunter2" not in str(error.value)
    saver.close()


async def test_using_the_saver_before_setup_says_to_run_setup(db_url: str) -> None:
    async with SQLSaver.from_conn_string(db_url) as saver:
        with pytest.raises(SchemaNotReadyError, match=r"call setup\(\)"):
            await saver.aget_tuple(config("t"))
        with pytest.raises(SchemaNotReadyError):
            saver.put(config("t"), checkpoint(), {}, {})


async def test_a_saver_shares_the_engines_it_is_given_and_leaves_them_open(db_url: str) -> None:
    sync_url, async_url = engines.driver_pair(engines.resolve(db_url))
    engine = sa.create_engine(sync_url)
    async_engine = create_async_engine(async_url)
    with SQLSaver(engine, async_engine=async_engine) as saver:
        saver.setup()
        saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        assert (await saver.aget_tuple(config("t"))).checkpoint["channel_values"] == {"a": 1}
        assert saver.db.sync_engine is engine and saver.db.async_engine is async_engine
    with engine.connect() as conn:  # still usable: the saver did not dispose it
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    async with SQLSaver(async_engine) as async_only:
        assert (await async_only.aget_tuple(config("t"))).checkpoint["channel_values"] == {"a": 1}
        assert async_only.get_tuple(config("t")) is not None, "the sync side is derived from the same URL"
    engine.dispose()
    await async_engine.dispose()


def test_engines_for_two_different_databases_are_refused(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/one.db")
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/two.db")
    with pytest.raises(ConfigurationError, match="different databases"):
        SQLSaver(engine, async_engine=async_engine)


def test_postgresql_prepare_threshold_is_configurable_for_pgbouncer(tmp_path: Any) -> None:
    require("postgresql")
    options = EngineOptions(prepare_threshold=None)
    with fresh_database("postgresql", tmp_path) as url, SQLSaver.from_conn_string(url, engine_options=options) as saver:
        saver.setup()
        with saver.db.sync_engine.connect() as conn:
            assert conn.connection.driver_connection.prepare_threshold is None


def _kill(engine_name: str, backend_id: int) -> None:
    admin = sa.create_engine(admin_url(engine_name), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if engine_name == "postgresql":
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_id})
        else:
            conn.exec_driver_sql(f"KILL {int(backend_id)}")
    admin.dispose()


def _backend_id(saver: SQLSaver) -> int:
    with saver.db.sync_engine.connect() as conn:
        driver = conn.connection.driver_connection
        return int(driver.info.backend_pid if hasattr(driver, "info") else driver.thread_id())


@pytest.mark.parametrize("engine_name", ["postgresql", "mysql"])
def test_a_pooled_connection_the_server_dropped_while_idle_is_replaced_unnoticed(
    engine_name: str, tmp_path: Any
) -> None:
    """Servers, poolers and NATs close idle connections; the next call must not fail."""
    require(engine_name)
    options = EngineOptions(ping_after_idle=0.05, pool_size=1)
    with fresh_database(engine_name, tmp_path) as url, SQLSaver.from_conn_string(url, engine_options=options) as saver:
        saver.setup()
        stored = saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        first = _backend_id(saver)
        _kill(engine_name, first)
        time.sleep(0.1)
        assert saver.get_tuple(stored).checkpoint["channel_values"] == {"a": 1}
        assert _backend_id(saver) != first


def test_bad_engine_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="sqlite_synchronous"):
        EngineOptions(sqlite_synchronous="OFF")
    with pytest.raises(ConfigurationError, match="table_prefix"):
        SQLSaver("sqlite://", table_prefix="drop table;")
