"""The databases a run uses: SQLite files in a work directory, and a database of its
own on each server, created at the start and dropped at the end.

Server URLs come from ``CHECKPOINT_SQL_BENCH_POSTGRES_URL`` / ``CHECKPOINT_SQL_BENCH_MYSQL_URL``
(falling back to the test suite's ``CHECKPOINT_SQL_TEST_*`` variables, then to the
local servers).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

ENGINES = ("sqlite", "postgresql", "mysql")

_DEFAULTS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql://root@127.0.0.1:3306/test",
}
_ENV = {
    "postgresql": ("CHECKPOINT_SQL_BENCH_POSTGRES_URL", "CHECKPOINT_SQL_TEST_POSTGRES_URL"),
    "mysql": ("CHECKPOINT_SQL_BENCH_MYSQL_URL", "CHECKPOINT_SQL_TEST_MYSQL_URL"),
}
_ADMIN_DRIVER = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}


def server_url(engine: str) -> URL:
    for name in _ENV[engine]:
        if os.environ.get(name):
            return make_url(os.environ[name])
    return make_url(_DEFAULTS[engine])


def unreachable(engine: str) -> str | None:
    """Why a server cannot be used, or None."""
    if engine == "sqlite":
        return None
    probe = sa.create_engine(server_url(engine).set(drivername=_ADMIN_DRIVER[engine]))
    try:
        with probe.connect():
            return None
    except Exception as exc:
        return f"{engine} at {server_url(engine).render_as_string()} is unreachable: {str(exc).splitlines()[0]}"
    finally:
        probe.dispose()


@dataclass(frozen=True)
class Database:
    """One database for one engine: a SQLite file, or a database on a server."""

    engine: str
    name: str
    path: Path | None = None

    @property
    def url(self) -> str:
        """The plain URL (``sqlite:///``, ``postgresql://``, ``mysql://``) as users write it."""
        if self.engine == "sqlite":
            assert self.path is not None
            return f"sqlite:///{self.path}"
        return server_url(self.engine).set(database=self.name).render_as_string(hide_password=False)

    @property
    def sa_url(self) -> URL:
        """The URL with the sync driver SQLAlchemy should use."""
        url = make_url(self.url)
        if self.engine == "sqlite":
            return url
        return url.set(drivername=_ADMIN_DRIVER[self.engine])

    @property
    def libpq(self) -> str:
        """A libpq connection string (PostgreSQL)."""
        return self.url

    def mysql_address(self) -> MySQLAddress:
        url = make_url(self.url)
        return MySQLAddress(
            url.host or "127.0.0.1", url.port or 3306, url.username or "root", url.password or "", self.name
        )


@dataclass(frozen=True)
class MySQLAddress:
    host: str
    port: int
    user: str
    password: str
    database: str


class Databases:
    """Creates databases on demand and drops every one of them at `drop_all`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:8]
        self.created: list[Database] = []

    def create(self, engine: str, label: str) -> Database:
        name = f"cpsql_bench_{self.run_id}_{label}"
        if engine == "sqlite":
            self.workdir.mkdir(parents=True, exist_ok=True)
            db = Database(engine, name, self.workdir / f"{name}.db")
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db.path}{suffix}").unlink(missing_ok=True)
        else:
            db = Database(engine, name)
            admin = sa.create_engine(
                server_url(engine).set(drivername=_ADMIN_DRIVER[engine]), isolation_level="AUTOCOMMIT"
            )
            with admin.connect() as conn:
                if engine == "postgresql":
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                else:
                    conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            admin.dispose()
        self.created.append(db)
        return db

    def drop_all(self) -> list[str]:
        """Drop every database created; returns the errors (a drop must not hide the run's)."""
        errors = []
        for db in reversed(self.created):
            try:
                self._drop(db)
            except Exception as exc:
                errors.append(f"could not drop {db.engine} database {db.name}: {exc}")
        self.created.clear()
        return errors

    def _drop(self, db: Database) -> None:
        if db.engine == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db.path}{suffix}").unlink(missing_ok=True)
            return
        admin = sa.create_engine(
            server_url(db.engine).set(drivername=_ADMIN_DRIVER[db.engine]), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            if db.engine == "postgresql":
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{db.name}`")
        admin.dispose()


def filesystem_of(path: Path) -> str:
    """The filesystem type holding `path` (from /proc/mounts), e.g. ``ext4`` or ``tmpfs``:
    SQLite's fsync costs nothing on tmpfs, which would make synchronous=FULL meaningless."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    resolved = str(path.resolve())
    best, kind = "", "unknown"
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1]
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = parts[1], parts[2]
    return kind
