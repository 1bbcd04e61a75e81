"""What each engine's driver errors mean: a missing table, a prepared statement lost
to a transaction pooler."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError

from checkpoint_sql.dialects import Family


def is_missing_table(family: Family, exc: DBAPIError) -> bool:
    """Whether a driver error means one of our tables does not exist."""
    if family == "postgresql":
        return getattr(exc.orig, "sqlstate", None) == "42P01"
    if family == "mysql":
        args: tuple[Any, ...] = getattr(exc.orig, "args", ())
        return len(args) > 0 and args[0] == 1146
    return "no such table" in str(exc.orig)


def is_pooled_prepared_statement(family: Family, exc: DBAPIError) -> bool:
    """Whether a driver error is psycopg's prepared statement missing, already there or
    different in the server session at hand: what a transaction pooler does to
    server-side prepared statements (named ``_pg3_N`` by psycopg)."""
    return family == "postgresql" and 'prepared statement "_pg3_' in str(exc.orig)
