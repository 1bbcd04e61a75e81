"""What each engine's driver errors mean: a missing table, a prepared statement lost
to a transaction pooler, a fault worth retrying, a connection refused for good.

The retry classifier (`checkpoint_sql.retry.transient`) also judges errors from
savers that are not ours, with no SQLAlchemy engine (and so no dialect name) behind
them: `driver_faults` therefore tells the engine by the driver package that defined
the exception's class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from checkpoint_sql.dialects import Family


@dataclass(frozen=True, slots=True)
class DriverFaults:
    """How one database family's driver says "transient" and "refused for good"."""

    transient: Callable[[BaseException], bool]
    """Whether the same transaction, run again, may succeed (a driver's own exception)."""
    refused: Callable[[BaseException], bool]
    """Whether a failed connection attempt will fail the same way again (an unknown
    user or database, a wrong password) rather than meet a server that is away."""


def driver_faults(exc: BaseException) -> DriverFaults | None:
    """The classifiers of the driver that raised `exc`, or None if no database driver did."""
    return _DRIVERS.get(type(exc).__module__.partition(".")[0])


def is_missing_table(family: Family, exc: DBAPIError) -> bool:
    """Whether a driver error means one of our tables does not exist."""
    if family == "postgresql":
        return getattr(exc.orig, "sqlstate", None) == "42P01"
    if family == "mysql":
        return exc.orig is not None and _mysql_code(exc.orig) == 1146  # ER_NO_SUCH_TABLE
    return "no such table" in str(exc.orig)


def is_pooled_prepared_statement(family: Family, exc: DBAPIError) -> bool:
    """Whether a driver error is psycopg's prepared statement missing, already there or
    different in the server session at hand: what a transaction pooler does to
    server-side prepared statements (named ``_pg3_N`` by psycopg)."""
    return family == "postgresql" and 'prepared statement "_pg3_' in str(exc.orig)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].lower() if text else ""


# --- PostgreSQL (psycopg 3; psycopg2's `pgcode` is read too) ---------------------------

_PG_TRANSIENT_CODES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57P01",  # admin_shutdown: pg_terminate_backend, smart/fast shutdown
        "57P02",  # crash_shutdown: another backend crashed, the server resets
        "57P03",  # cannot_connect_now: starting up, shutting down, in recovery
        "53300",  # too_many_connections
    }
)
# Errors raised by the client library itself carry no SQLSTATE, only a message.
_PG_TRANSIENT_MESSAGES = (
    "the connection is closed",
    "connection has been closed unexpectedly",  # "SSL connection has been closed unexpectedly"
    "server closed the connection unexpectedly",
    "connection refused",
    "connection reset by peer",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "terminating connection",
)
_PG_REFUSED_MESSAGES = (
    "does not exist",  # role or database
    "authentication failed",
    "no pg_hba.conf entry",
    "permission denied",
)


def _postgresql_transient(exc: BaseException) -> bool:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(code, str):
        return code.startswith("08") or code in _PG_TRANSIENT_CODES
    message = _first_line(exc)
    return any(m in message for m in _PG_TRANSIENT_MESSAGES)


def _postgresql_refused(exc: BaseException) -> bool:
    message = _first_line(exc)
    return any(m in message for m in _PG_REFUSED_MESSAGES)


# --- MySQL / MariaDB (PyMySQL, asyncmy, mysqlclient: the error number is args[0]) -------

_MYSQL_TRANSIENT_CODES = frozenset(
    {
        1205,  # ER_LOCK_WAIT_TIMEOUT
        1213,  # ER_LOCK_DEADLOCK
        1040,  # ER_CON_COUNT_ERROR: too many connections
        1053,  # ER_SERVER_SHUTDOWN
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8: idle connection closed by the server)
        2002,  # CR_CONNECTION_ERROR: cannot connect through the socket
        2003,  # CR_CONN_HOST_ERROR: cannot connect (refused, server restarting)
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST
        2055,  # CR_SERVER_LOST_EXTENDED
        1180,  # ER_ERROR_DURING_COMMIT: a Galera node lost the primary component while committing
    }
)
# Galera answers every query with ER_UNKNOWN_COM_ERROR (1047) while the node is not part of
# the primary component: it is leaving, rejoining, or cut off from the majority. The same
# number without "WSREP" in the message is a protocol error, which would repeat.
_MYSQL_NODE_NOT_READY = 1047
_MYSQL_REFUSED_CODES = frozenset(
    {
        1044,  # ER_DBACCESS_DENIED_ERROR
        1045,  # ER_ACCESS_DENIED_ERROR
        1049,  # ER_BAD_DB_ERROR
        1698,  # ER_ACCESS_DENIED_NO_PASSWORD_ERROR
    }
)


def _mysql_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _mysql_transient(exc: BaseException) -> bool:
    code = _mysql_code(exc)
    if code == _MYSQL_NODE_NOT_READY:
        return "wsrep" in str(exc).lower()
    return code in _MYSQL_TRANSIENT_CODES


def _mysql_refused(exc: BaseException) -> bool:
    return _mysql_code(exc) in _MYSQL_REFUSED_CODES


# --- SQLite (sqlite3, also under aiosqlite) -------------------------------------------

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _sqlite_transient(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    message = _first_line(exc)
    return "database is locked" in message or "database table is locked" in message


def _sqlite_refused(exc: BaseException) -> bool:
    """A file that cannot be opened stays unopenable; there is no server to wait for."""
    return True


_DRIVERS: dict[str, DriverFaults] = {
    "psycopg": DriverFaults(_postgresql_transient, _postgresql_refused),
    "psycopg2": DriverFaults(_postgresql_transient, _postgresql_refused),
    "pymysql": DriverFaults(_mysql_transient, _mysql_refused),
    "asyncmy": DriverFaults(_mysql_transient, _mysql_refused),
    "MySQLdb": DriverFaults(_mysql_transient, _mysql_refused),
    "sqlite3": DriverFaults(_sqlite_transient, _sqlite_refused),
}
