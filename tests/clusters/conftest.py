"""Fixtures of the cluster scenarios: each cluster is started once for this package (it
takes seconds), on first use, and removed when the package's tests are done, also when
one fails.

A scenario whose programs are missing is skipped with the reason, unless
``CHECKPOINT_SQL_REQUIRE_ENGINES`` names it (``galera``, ``pg-failover``,
``pgbouncer``; `.ci/run` does): then its tests fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import pytest

from tests.clusters.servers import GALERA_PROVIDER, FailoverPair, GaleraCluster, PgBouncer, missing
from tests.conftest import REQUIRED
from tests.private_postgres import server_binaries

Server = TypeVar("Server", GaleraCluster, FailoverPair, PgBouncer)


def unavailable(scenario: str, reason: str) -> None:
    """Skip, or fail when CI requires the scenario."""
    if scenario in REQUIRED:
        pytest.fail(f"{reason} (CHECKPOINT_SQL_REQUIRE_ENGINES requires {scenario})")
    pytest.skip(reason)


def _postgres_binaries() -> str | None:
    return None if server_binaries() is not None else "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"


@contextmanager
def running(scenario: str, why_not: str | None, make: Callable[[], Server]) -> Iterator[Server]:
    """`make()` a server set and start it; skip (or fail) with the reason when it cannot
    run; remove it afterwards whatever happened."""
    if why_not is not None:
        unavailable(scenario, f"cannot run the {scenario} scenario: {why_not}")
    server: Any = None
    try:
        try:
            server = make()
            server.start()
        except Exception as exc:
            unavailable(scenario, f"cannot start the {scenario} scenario: {exc}")
        yield server
    finally:
        if server is not None:
            server.remove()


@pytest.fixture(scope="package")
def galera() -> Iterator[GaleraCluster]:
    why_not = missing("mariadbd", "mariadb-install-db", "rsync", "wsrep_sst_rsync", GALERA_PROVIDER)
    with running("galera", why_not, GaleraCluster) as cluster:
        yield cluster


@pytest.fixture(scope="package")
def pgbouncer() -> Iterator[PgBouncer]:
    with running("pgbouncer", missing("pgbouncer") or _postgres_binaries(), PgBouncer) as bouncer:
        yield bouncer


@pytest.fixture
def galera_database(galera: GaleraCluster) -> Iterator[str]:
    """A fresh database on the cluster (created through node 1, replicated), dropped afterwards."""
    name = f"cpsql_g_{uuid.uuid4().hex[:12]}"
    galera.create_database(name)
    try:
        yield name
    finally:
        galera.drop_database(name)


@pytest.fixture
def pgbouncer_database(pgbouncer: PgBouncer) -> Iterator[str]:
    """A fresh database behind PgBouncer (a schema in the URL's ``options`` would not
    do: PgBouncer refuses that startup parameter), dropped afterwards."""
    name = f"cpsql_b_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pgbouncer.server_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(pgbouncer.server_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["pgbouncer", "galera"])
def scenario(request: pytest.FixtureRequest) -> str:
    """A cluster the shared suites (conformance, graphs) run through."""
    return str(request.param)


@pytest.fixture
def scenario_url(scenario: str, request: pytest.FixtureRequest) -> str:
    """A fresh database reached through `scenario`: through PgBouncer with prepared
    statements off; on the Galera cluster by a URL naming every node."""
    if scenario == "pgbouncer":
        bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
        return bouncer.url(request.getfixturevalue("pgbouncer_database")) + "?prepare_threshold=none"
    cluster: GaleraCluster = request.getfixturevalue("galera")
    return cluster.url(request.getfixturevalue("galera_database"))


@contextmanager
def failover_pair(ports: tuple[int, int]) -> Iterator[FailoverPair]:
    """A started PostgreSQL primary with its synchronous hot standby, removed afterwards."""
    with running("pg-failover", _postgres_binaries(), lambda: FailoverPair(ports)) as pair:
        yield pair
