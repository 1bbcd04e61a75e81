"""Which errors are worth retrying: the transient-fault classifier.

An error is *transient* when running the same transaction again, unchanged, can succeed:
the connection dropped, the server is restarting, a lock or a deadlock chose us as the
victim. Everything else (a constraint violation, bad SQL, a value the column refuses, or
any of checkpoint_sql's own typed errors) would fail the same way again, so it is never
retried.

It must classify errors from savers that are not ours too: a `RetryingSaver` around
LangGraph's `PostgresSaver` sees raw psycopg errors, with no SQLAlchemy engine behind
them. So an error wrapped by SQLAlchemy is classified by the driver error inside it,
and what each driver's errors mean is `checkpoint_sql.dialects.driver_errors`; this
module only walks an error and the errors it was raised from.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import exc as sa_exc

from checkpoint_sql.dialects.driver_errors import driver_faults
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
    faults = driver_faults(driver_error)
    return faults is not None and faults.transient(driver_error)


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception inside a SQLAlchemy one."""
    return exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, sa_exc.SQLAlchemyError) or driver_faults(exc) is not None


def _is_caller_error(exc: BaseException) -> bool:
    return any(cls.__name__ in _CALLER_ERRORS for cls in type(exc).__mro__)


def _refused_for_good(cause: BaseException | None) -> bool:
    """Whether a failed connection attempt was a refusal that will repeat (unknown user
    or database, wrong password) rather than a server that is away or restarting."""
    if cause is None:
        return False
    driver_error = _driver_error(cause)
    faults = driver_faults(driver_error)
    return faults is not None and faults.refused(driver_error)
