"""Vector search in SQL: sqlite-vec on SQLite, array arithmetic on PostgreSQL.

MySQL/MariaDB have neither, so the stores score vectors in Python there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.columns import float32_bytes


def sqlite_vec_loadable() -> bool:
    """Whether this Python can load sqlite-vec into SQLite (its `sqlite3` module must be
    built with extension loading, which some distributions, and pyenv by default, leave out)."""
    import importlib.util
    import sqlite3

    return hasattr(sqlite3.Connection, "enable_load_extension") and importlib.util.find_spec("sqlite_vec") is not None


def load_sqlite_vec(conn: Connection) -> None:
    """Load sqlite-vec into the pooled SQLite connection under `conn`, once per connection."""
    record = conn.connection
    if record.info.get("sqlite_vec"):
        return
    import sqlite_vec  # type: ignore[import-untyped]

    raw = record.dbapi_connection
    path = sqlite_vec.loadable_path()
    if isinstance(raw, sa.engine.AdaptedConnection):  # aiosqlite: run on its worker thread
        raw.run_async(lambda driver: driver.enable_load_extension(True))
        raw.run_async(lambda driver: driver.load_extension(path))
        raw.run_async(lambda driver: driver.enable_load_extension(False))
    else:
        raw.enable_load_extension(True)  # type: ignore[union-attr]
        raw.load_extension(path)  # type: ignore[union-attr]
        raw.enable_load_extension(False)  # type: ignore[union-attr]
    record.info["sqlite_vec"] = True


def cosine_similarity(
    family: Family,
    embedding: sa.ColumnElement[Any],
    norm: sa.ColumnElement[float],
    query: Sequence[float],
    query_norm: float,
) -> sa.ColumnElement[float]:
    """Cosine similarity of each stored embedding with `query`, computed by the engine:
    an ``unnest`` dot product over ``real[]`` on PostgreSQL (no extension needed),
    sqlite-vec's ``vec_distance_cosine`` on SQLite (after `load_sqlite_vec`). Zero
    vectors score 0. MySQL/MariaDB have no vector arithmetic: callers score there."""
    if query_norm == 0:
        return sa.literal(0.0, sa.Float())
    if family == "postgresql":
        pairs = sa.func.unnest(embedding, sa.literal(list(query), postgresql.ARRAY(postgresql.REAL()))).table_valued(
            "a", "b"
        )
        pairs = pairs.render_derived()
        dot = sa.select(sa.func.sum(pairs.c.a * pairs.c.b)).scalar_subquery()
        score = dot / (norm * query_norm)
    elif family == "sqlite":
        score = 1.0 - sa.func.vec_distance_cosine(embedding, sa.literal(float32_bytes(query), sa.LargeBinary()))
    else:
        raise ValueError("MySQL/MariaDB cannot score vectors in SQL")
    # No vector (an outer join's missing row): NULL, which sqlite-vec would refuse to read.
    return sa.case((norm.is_(None), sa.null()), (norm == 0, sa.literal(0.0, sa.Float())), else_=score)
