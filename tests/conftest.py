"""Fixtures: every test runs on each engine, in a database (or schema) of its own.

Server URLs come from ``CHECKPOINT_SQL_TEST_POSTGRES_URL`` and
``CHECKPOINT_SQL_TEST_MYSQL_URL`` (defaulting to the local servers). An unreachable
server skips its tests with the reason, unless ``CHECKPOINT_SQL_REQUIRE_ENGINES``
names it (as ``.ci/run`` does): then they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import cache

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url

from checkpoint_sql import SQLSaver
from checkpoint_sql.saver import elements

# Property tests (tests/test_properties.py): few examples from a fixed seed in CI, so a
# run is quick and repeatable; `--hypothesis-profile thorough` for a longer local hunt.
# Examples share the test's database: they must not rely on a fresh one.
_PROPERTY_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
settings.register_profile("ci", max_examples=25, derandomize=True, **_PROPERTY_SETTINGS)  # type: ignore[arg-type]
settings.register_profile("thorough", max_examples=1000, **_PROPERTY_SETTINGS)  # type: ignore[arg-type]
settings.load_profile("ci")


@contextmanager
def splitting_every_list() -> Iterator[None]:
    """Within it, every non-empty msgpack list is stored cut into parts, however small.

    For data built outside a test's own fixtures (a module-scoped database is built
    before `every_list_split` applies), so that it takes the form the suite tests.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(elements, "SPLIT_MIN_BYTES", 1)
        patch.setattr(elements, "MIN_ELEMENT_BYTES", 0)
        yield


@pytest.fixture(autouse=True)
def every_list_split(request: pytest.FixtureRequest) -> Iterator[None]:
    """Store every non-empty msgpack list cut into parts, however small.

    In production only lists of 16 kB or more are cut (`elements.SPLIT_MIN_BYTES`), and
    most values in these tests are smaller: without this, conformance, the graphs and
    the command would run through the whole-blob form only. Values of other types
    still take the whole-blob form. Tests marked ``list_thresholds`` keep the
    production thresholds.
    """
    if request.node.get_closest_marker("list_thresholds") is not None:
        yield
        return
    with splitting_every_list():
        yield


ENGINES = ("sqlite", "postgresql", "mysql")
SERVER_URLS = {
    "postgresql": os.environ.get("CHECKPOINT_SQL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    "mysql": os.environ.get("CHECKPOINT_SQL_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
REQUIRED = {e.strip() for e in os.environ.get("CHECKPOINT_SQL_REQUIRE_ENGINES", "").split(",") if e.strip()}
_SYNC_DRIVER = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}


def admin_url(engine: str) -> sa.URL:
    return make_url(SERVER_URLS[engine]).set(drivername=_SYNC_DRIVER[engine])


@cache
def _unreachable(engine: str) -> str | None:
    """Why `engine` cannot be used, or None if it can."""
    if engine == "sqlite":
        return None
    probe = sa.create_engine(admin_url(engine))
    try:
        with probe.connect():
            return None
    except Exception as exc:
        return f"{engine} at {admin_url(engine).render_as_string()} is unreachable: {str(exc).splitlines()[0]}"
    finally:
        probe.dispose()


def require(engine: str) -> None:
    reason = _unreachable(engine)
    if reason is None:
        return
    if engine in REQUIRED:
        pytest.fail(f"{reason} (CHECKPOINT_SQL_REQUIRE_ENGINES requires it)")
    pytest.skip(reason)


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    require(request.param)
    return str(request.param)


@pytest.fixture
def db_url(engine_name: str, tmp_path: object) -> Iterator[str]:
    """A URL to an empty database that is dropped after the test."""
    with fresh_database(engine_name, tmp_path) as url:
        yield url


class fresh_database:
    """Context manager creating (and afterwards dropping) an empty database for one
    engine: a file for SQLite, a schema on the search path for PostgreSQL, a database
    for MySQL/MariaDB."""

    def __init__(self, engine: str, tmp_path: object) -> None:
        self.engine = engine
        self.tmp_path = tmp_path
        self.name = f"cpsql_t_{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> str:
        if self.engine == "sqlite":
            return f"sqlite:///{self.tmp_path}/{self.name}.db"
        admin = sa.create_engine(admin_url(self.engine), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if self.engine == "postgresql":
                conn.exec_driver_sql(f'CREATE SCHEMA "{self.name}"')
            else:
                conn.exec_driver_sql(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")
        admin.dispose()
        url = make_url(SERVER_URLS[self.engine])
        if self.engine == "postgresql":
            url = url.update_query_dict({"options": f"-csearch_path={self.name}"})
        else:
            url = url.set(database=self.name)
        return url.render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        if self.engine == "sqlite":
            return
        admin = sa.create_engine(admin_url(self.engine), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if self.engine == "postgresql":
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{self.name}`")
        admin.dispose()


@pytest.fixture
def saver(db_url: str) -> Iterator[SQLSaver]:
    """A set-up saver for the sync API."""
    with SQLSaver.from_conn_string(db_url) as s:
        s.setup()
        yield s


@pytest.fixture
async def asaver(db_url: str) -> AsyncIterator[SQLSaver]:
    """A set-up saver for the async API."""
    async with SQLSaver.from_conn_string(db_url) as s:
        await s.asetup()
        yield s
