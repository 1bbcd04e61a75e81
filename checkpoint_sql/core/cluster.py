"""Running on more than one server: multi-host URLs, Galera nodes, and poolers.

A highly available database is several servers behind one name. This module holds what
the engines need to find a usable one and to use it safely; `engines.py` calls it when
it builds an engine, and nothing else does.

* PostgreSQL: libpq does the work. A URL naming several hosts
  (``?host=a:5432&host=b:5432&target_session_attrs=read-write``) is passed to psycopg,
  which tries them in order and keeps the first that accepts writes; nothing here.
* MySQL/MariaDB: the drivers take one host. A URL may name several the same way
  (``mysql://user@/db?host=a:3306&host=b:3306``); each new connection goes to the first
  listed host that answers *and*, if it is a Galera node, is ready for clients (a node
  that left the primary component or is still rejoining refuses every query with 1047).
  On a Galera node each session turns on causal reads (``wsrep_sync_wait``), so that a
  read sees every transaction committed on any node before it began: a thread resumed
  through another node sees the checkpoint its interrupt left.
* PgBouncer in transaction mode hands each transaction to whichever server connection
  is free, so server-side prepared statements must be off: ``prepare_threshold=none``
  in the URL (or `EngineOptions.prepare_threshold=None`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from checkpoint_sql.errors import ConfigurationError

HostPort = tuple[str, int]
_MYSQL_PORT = 3306


def listed_hosts(url: URL) -> tuple[URL, list[HostPort]]:
    """A MySQL URL's hosts, in the order to try them: those given as ``host=`` query
    values (several allowed); none when the URL names its one host (or socket) the
    usual way. The URL is returned without the query values (the driver would refuse
    them) and set to the first host."""
    given = url.query.get("host")
    if given is None:
        return url, []
    shown = url.render_as_string(hide_password=True)
    if url.host:
        raise ConfigurationError(
            f"URL {shown!r} names a host both before the path and as host= in the query; "
            "list every host as host= (e.g. mysql://user@/db?host=a:3306&host=b:3306)"
        )
    hosts = [_host_port(value, url) for value in ((given,) if isinstance(given, str) else given)]
    first_host, first_port = hosts[0]
    return url.difference_update_query(["host"]).set(host=first_host, port=first_port), hosts


def _host_port(value: str, url: URL) -> HostPort:
    shown = url.render_as_string(hide_password=True)
    host, _, port = value.rpartition(":") if ":" in value else (value, "", "")
    if not host or (port and not port.isdigit()):
        raise ConfigurationError(f"host={value!r} in URL {shown!r} is not 'HOST' or 'HOST:PORT'")
    return host, int(port) if port else _MYSQL_PORT


def prepare_threshold(url: URL, default: int | None) -> tuple[URL, int | None]:
    """psycopg's prepare threshold as the URL sets it (``prepare_threshold=none`` or a
    number; psycopg would take the text literally), else `default`; and the URL
    without it."""
    given = url.query.get("prepare_threshold")
    if given is None:
        return url, default
    text = given if isinstance(given, str) else given[-1]
    stripped = url.difference_update_query(["prepare_threshold"])
    if text.lower() in ("none", "null", "off", ""):
        return stripped, None
    if not text.isdigit():
        shown = url.render_as_string(hide_password=True)
        raise ConfigurationError(
            f"prepare_threshold={text!r} in URL {shown!r}: expected 'none' (no server-side "
            "prepared statements, as PgBouncer in transaction mode needs) or a number of executions"
        )
    return stripped, int(text)


def connect_to_ready_node(engine: Engine, hosts: list[HostPort], *, sync_wait: int) -> None:
    """Make each new MySQL connection of `engine` go to the first of `hosts` (or, if
    there are none, to the URL's own server) that answers and is ready, and give
    Galera sessions the `sync_wait` causality bits.

    A host that refuses the connection, or is a Galera node not ready for clients, is
    skipped. If none is ready, the connection goes to the first that answered anyway:
    its statements then fail with the node's own error (1047), which the transient
    classifier knows, so a retry policy waits for the cluster rather than giving up.
    """

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        fallback: Any = None
        failure: BaseException | None = None
        candidates: list[dict[str, Any]] = [{"host": host, "port": port} for host, port in hosts] or [{}]
        for where in candidates:
            try:
                connection = dialect.connect(*cargs, **{**cparams, **where})
            except dialect.loaded_dbapi.Error as exc:
                failure = exc
                continue
            try:
                if _ready(connection, sync_wait):
                    if fallback is not None:
                        fallback.close()
                    return connection
            except dialect.loaded_dbapi.Error as exc:
                failure = exc
                connection.close()
                continue
            if fallback is None:
                fallback = connection
            else:
                connection.close()
        if fallback is not None:
            return fallback
        assert failure is not None
        raise failure


def _ready(connection: Any, sync_wait: int) -> bool:
    """Whether the server behind `connection` takes queries: any non-Galera server
    does; a Galera node only while it is ready (in the primary component, caught up). A
    ready Galera session gets causal reads."""
    cursor = connection.cursor()
    try:
        cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
        row = cursor.fetchone()
        if row is None or str(row[1]).upper() != "ON":
            return True
        cursor.execute("SHOW STATUS LIKE 'wsrep_ready'")
        row = cursor.fetchone()
        if row is None or str(row[1]).upper() != "ON":
            return False
        if sync_wait:
            cursor.execute(f"SET SESSION wsrep_sync_wait = @@wsrep_sync_wait | {int(sync_wait)}")
        return True
    finally:
        cursor.close()
