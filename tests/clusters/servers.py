"""Replicated servers the cluster tests start on loopback: a 3-node MariaDB Galera
cluster, a PostgreSQL primary with a synchronous hot standby, and PgBouncer in front
of a PostgreSQL server in transaction mode.

Each lives in a temporary directory on fixed private ports (25400-25499; never the
shared servers on 5432/3306) and is removed by `remove()`, which also kills whatever
of it still runs. Servers refuse to run as root: PostgreSQL's run as ``postgres``
(`PrivatePostgres`), MariaDB's as ``mysql``, PgBouncer as ``postgres``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import psycopg
import pymysql

from tests.private_postgres import PrivatePostgres, server_binaries

GALERA_PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
GALERA_PORTS = (25401, 25402, 25403)
"""Client ports of the nodes; each node's group (gmcast), IST and SST ports are these + 10, + 20, + 30."""
STANDBY_PORTS, FAILOVER_PORTS = (25440, 25441), (25442, 25443)
"""(primary, standby) ports of the pair the read-only tests use, and of the one a failover destroys."""
PGBOUNCER_PORT, PGBOUNCER_SERVER_PORT = 25450, 25451


def missing(*programs: str | Path) -> str | None:
    """Why a scenario cannot run here: the first of `programs` not installed, or None."""
    for program in programs:
        found = Path(program).exists() if isinstance(program, Path) else shutil.which(program)
        if not found:
            return f"{program} is not installed"
    return None


def _owned_by(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user, user)


def _wait(what: str, ready: Callable[[], bool], timeout: float) -> None:
    """Poll `ready()` (an error counts as not yet) until it is true or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:g} s")


# --- MariaDB Galera -----------------------------------------------------------------


class GaleraNode:
    """One `mariadbd` of the cluster: its own data directory, socket and ports."""

    def __init__(self, root: Path, number: int, port: int, peers: str) -> None:
        self.name = f"node{number}"
        self.port = port
        self.dir = root / self.name
        self.dir.mkdir()
        (self.dir / "data").mkdir()
        self.log = self.dir / "error.log"
        self.config = self.dir / "my.cnf"
        self.config.write_text(
            "\n".join(
                [
                    "[mysqld]",
                    "user=mysql",
                    f"datadir={self.dir / 'data'}",
                    f"port={port}",
                    "bind-address=127.0.0.1",
                    f"socket={self.dir / 'mysqld.sock'}",
                    f"pid-file={self.dir / 'mysqld.pid'}",
                    f"log-error={self.log}",
                    "binlog_format=ROW",
                    "default-storage-engine=InnoDB",
                    "innodb_autoinc_lock_mode=2",
                    "innodb_buffer_pool_size=32M",
                    "innodb_flush_log_at_trx_commit=0",
                    "max_connections=300",
                    "wsrep_on=ON",
                    f"wsrep_provider={GALERA_PROVIDER}",
                    "wsrep_cluster_name=checkpoint_sql_tests",
                    f"wsrep_cluster_address=gcomm://{peers}",
                    f"wsrep_node_address=127.0.0.1:{port + 10}",
                    f"wsrep_node_name={self.name}",
                    f'wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:{port + 10};'
                    f'ist.recv_addr=127.0.0.1:{port + 20};gcache.size=64M"',
                    "wsrep_sst_method=rsync",
                    f"wsrep_sst_receive_address=127.0.0.1:{port + 30}",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            for path in (self.dir, self.dir / "data"):
                shutil.chown(path, "mysql", "mysql")
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def start(self, *, new_cluster: bool = False) -> None:
        """Start the node (the first one founds the cluster); `wait_synced` waits for it."""
        command = ["mariadbd", f"--defaults-file={self.config}"]
        if new_cluster:
            command.append("--wsrep-new-cluster")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        """SIGKILL, as a crash would: the node leaves the cluster without a word."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def connect(self, database: str | None = None) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", database=database, autocommit=True)

    def status(self, name: str) -> str | None:
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SHOW STATUS LIKE %s", (name,))
                row = cursor.fetchone()
                return None if row is None else str(row[1])
        finally:
            conn.close()

    def synced(self, cluster_size: int) -> bool:
        return self.status("wsrep_local_state_comment") == "Synced" and self.status("wsrep_cluster_size") == str(
            cluster_size
        )


class GaleraCluster:
    """Three nodes of MariaDB with Galera replication, all writable."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cpsql-galera-"))
        _owned_by(self.root, "mysql")
        peers = ",".join(f"127.0.0.1:{port + 10}" for port in GALERA_PORTS)
        self.nodes = [GaleraNode(self.root, n + 1, port, peers) for n, port in enumerate(GALERA_PORTS)]

    def start(self) -> None:
        """Found the cluster on node 1, then let the others join it (by rsync SST)."""
        first = self.nodes[0]
        subprocess.run(
            ["mariadb-install-db", f"--defaults-file={first.config}", "--auth-root-authentication-method=normal",
             "--skip-test-db"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        first.start(new_cluster=True)
        _wait(f"galera {first.name}", lambda: first.synced(1), 60)
        for node in self.nodes[1:]:
            node.start()
        for node in self.nodes:
            self.wait_synced(node)

    def wait_synced(self, node: GaleraNode, timeout: float = 90) -> None:
        _wait(f"galera {node.name}", lambda: node.synced(len(self.nodes)), timeout)

    def url(self, database: str, *, first: int = 0) -> str:
        """A URL naming every node, node `first` first and the others after it in turn."""
        order = self.nodes[first:] + self.nodes[:first]
        hosts = "&".join(f"host=127.0.0.1:{node.port}" for node in order)
        return f"mysql://root@/{database}?{hosts}"

    def create_database(self, name: str) -> None:
        conn = self.nodes[0].connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        for node in self.nodes:
            with suppress(pymysql.MySQLError):
                conn = node.connect()
                try:
                    with conn.cursor() as cursor:
                        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
                    return
                finally:
                    conn.close()

    def remove(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


# --- PostgreSQL primary + standby -----------------------------------------------------


class FailoverPair:
    """A primary and a hot standby on synchronous replication: a commit is acknowledged
    once the standby has applied it (``remote_apply``), so promoting the standby loses
    no acknowledged commit, and a read on the standby sees it at once."""

    def __init__(self, ports: tuple[int, int]) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.ports = ports
        self.primary = PrivatePostgres(
            binaries,
            port=ports[0],
            settings={"synchronous_standby_names": "'*'", "synchronous_commit": "remote_apply"},
        )
        self.standby: PrivatePostgres | None = None

    def start(self) -> None:
        self.primary.start()
        self.standby = PrivatePostgres(
            self.primary.binaries, port=self.ports[1], settings={"hot_standby": "on"}, standby_of=self.primary
        )
        self.standby.start()
        _wait("standby streaming", self._streaming, 30)

    def _streaming(self) -> bool:
        return bool(self._primary_scalar("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"))

    def _primary_scalar(self, sql: str) -> object:
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            row = conn.execute(sql).fetchone()
            return None if row is None else row[0]

    def url(self, query: str = "") -> str:
        """The multi-host URL an application uses: both servers, the writable one chosen
        (`query` adds settings: ``&name=value``)."""
        hosts = "&".join(f"host=127.0.0.1:{port}" for port in self.ports)
        return f"postgresql://postgres@/postgres?{hosts}&target_session_attrs=read-write{query}"

    def remove(self) -> None:
        for server in (self.primary, self.standby):
            if server is not None:
                server.remove()


# --- PgBouncer -------------------------------------------------------------------------


class PgBouncer:
    """PgBouncer in transaction mode in front of a private PostgreSQL server, for every
    database of that server (``* =``), with trust authentication."""

    def __init__(self) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.server = PrivatePostgres(binaries, port=PGBOUNCER_SERVER_PORT)
        self.root = self.server.root
        self.config = self.root / "pgbouncer.ini"
        (self.root / "users.txt").write_text('"postgres" ""\n')
        self.config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host=127.0.0.1 port={PGBOUNCER_SERVER_PORT}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {PGBOUNCER_PORT}",
                    f"unix_socket_dir = {self.root}",
                    "auth_type = trust",
                    f"auth_file = {self.root / 'users.txt'}",
                    "pool_mode = transaction",
                    "default_pool_size = 10",
                    "max_client_conn = 500",
                    f"logfile = {self.root / 'pgbouncer.log'}",
                    f"pidfile = {self.root / 'pgbouncer.pid'}",
                    "",
                ]
            )
        )
        for path in (self.config, self.root / "users.txt"):
            _owned_by(path, "postgres")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.server.start()
        command = ["pgbouncer", str(self.config)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait("pgbouncer", self._answers, 30)

    def _answers(self) -> bool:
        with psycopg.connect(self.url("postgres"), autocommit=True, prepare_threshold=None) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{PGBOUNCER_PORT}/{database}"

    def server_url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{PGBOUNCER_SERVER_PORT}/{database}"

    def remove(self) -> None:
        """Stop PgBouncer (by its pid file: under root `process` is `runuser`) and the server."""
        pidfile = self.root / "pgbouncer.pid"
        if pidfile.exists():
            with suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.server.remove()
