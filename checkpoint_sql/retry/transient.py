"""Which errors are worth retrying: the transient-fault classifier, one section per dialect.

An error is *transient* when running the same transaction again, unchanged, can succeed:
the connection dropped, the server is restarting, a lock or a deadlock chose us as the
victim. Everything else (a constraint violation, bad SQL, a value the column refuses, or
any of checkpoint_sql's own typed errors) would fail the same way again, so it is never
retried.

This is its own module rather than a part of `dialects.py` because it must classify
errors from savers that are not ours: a `RetryingSaver` around LangGraph's
`PostgresSaver` sees raw psycopg errors, with no SQLAlchemy engine (and so no dialect
name) behind them. The dialect is therefore read off the driver exception itself (the
module that raised it), and an error wrapped by SQLAlchemy is classified by the driver
error inside it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import exc as sa_exc

from checkpoint_sql.errors import CheckpointSQLError, EngineUnreachableError

Classifier = Callable[[BaseException], bool]

# PEP 249 classes that mean "this statement is wrong for this data", whatever the driver:
# repeating it cannot help.
_CALLER_ERRORS = frozenset({"IntegrityError", "ProgrammingError", "DataError"})


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a database fault that the same transaction, run again, may not hit.

    An error raised while cleaning up after a lost connection (a rollback that cannot be
    sent, psycopg's "cannot exit pipeline mode while busy") says nothing by itself; it
    is judged by the database errors it was raised from (its ``__cause__`` and
    ``__context__`` chain), unless it is itself one that must never be retried.

    This is the default classifier of `RetryPolicy`; pass ``is_transient=`` to a policy
    to retry more (it is consulted in addition to this one).
    """
    if isinstance(exc, EngineUnreachableError):
        return not _refused_for_good(exc.__cause__)
    if isinstance(exc, CheckpointSQLError) or _is_caller_error(exc) or _is_caller_error(_driver_error(exc)):
        return False
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen and _is_database_error(link):
        if _is_caller_error(link):
            return False
        if _names_a_transient_fault(link):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def _names_a_transient_fault(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DisconnectionError) or getattr(exc, "connection_invalidated", False):
        return True
    driver_error = _driver_error(exc)
    dialect = _DIALECTS.get(_driver_of(driver_error))
    return dialect is not None and dialect.transient(driver_error)


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception inside a SQLAlchemy one."""
    return exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, sa_exc.SQLAlchemyError) or _driver_of(exc) in _DIALECTS


def _is_caller_error(exc: BaseException) -> bool:
    return any(cls.__name__ in _CALLER_ERRORS for cls in type(exc).__mro__)


def _refused_for_good(cause: BaseException | None) -> bool:
    """Whether a failed connection attempt was a refusal that will repeat (unknown user
    or database, wrong password) rather than a server that is away or restarting."""
    if cause is None:
        return False
    driver_error = _driver_error(cause)
    dialect = _DIALECTS.get(_driver_of(driver_error))
    return dialect is not None and dialect.refused(driver_error)


def _driver_of(exc: BaseException) -> str:
    """The top-level package of the module that defined the exception's class."""
    return type(exc).__module__.partition(".")[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].lower() if text else ""


class _Dialect:
    """How one database family says "transient" and "refused for good"."""

    def __init__(self, transient: Classifier, refused: Classifier) -> None:
        self.transient = transient
        self.refused = refused


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


_DIALECTS: dict[str, _Dialect] = {
    "psycopg": _Dialect(_postgresql_transient, _postgresql_refused),
    "psycopg2": _Dialect(_postgresql_transient, _postgresql_refused),
    "pymysql": _Dialect(_mysql_transient, _mysql_refused),
    "asyncmy": _Dialect(_mysql_transient, _mysql_refused),
    "MySQLdb": _Dialect(_mysql_transient, _mysql_refused),
    "sqlite3": _Dialect(_sqlite_transient, _sqlite_refused),
}
