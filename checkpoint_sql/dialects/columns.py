"""Column types that index, compare and round-trip the same way on every engine.

Each type names what a column holds (a hash key, an id that sorts by bytes, a JSON
document, a microsecond timestamp, an embedding) and picks the engine's type that
behaves alike: byte-wise collations, MySQL's large BLOB and TEXT variants, JSONB on
PostgreSQL and canonical JSON text where JSON is compared as text.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from checkpoint_sql.dialects import MYSQL_DIALECTS


def key_bytes() -> TypeEngine[bytes]:
    """A 16-byte hash key. Ids of any length are keyed by their hash, because
    PostgreSQL's btree refuses entries over ~2.7 kB and InnoDB keys stop at 3072 bytes."""
    return sa.LargeBinary(16).with_variant(mysql.BINARY(16), *MYSQL_DIALECTS)


def ascii_key(length: int) -> TypeEngine[str]:
    """A short identifier (checkpoint id, version) that sorts and compares by bytes.

    Checkpoint ids are uuid6 strings whose byte order is their time order; a locale
    collation (PostgreSQL's default) or a case-insensitive one (MySQL's default)
    would break `before=` and "latest".
    """
    return (
        sa.String(length)
        .with_variant(sa.String(length, collation="C"), "postgresql")
        .with_variant(mysql.VARCHAR(length, charset="ascii", collation="ascii_bin"), *MYSQL_DIALECTS)
    )


def unicode_key(length: int) -> TypeEngine[str]:
    """A short user-chosen name in a key (channel, task id): exact, case-sensitive."""
    return (
        sa.String(length)
        .with_variant(sa.String(length, collation="C"), "postgresql")
        .with_variant(mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), *MYSQL_DIALECTS)
    )


def short_bytes(length: int) -> TypeEngine[bytes]:
    """At most `length` bytes, compared byte by byte (no collation, no pad-space rule)
    and indexable on every engine: VARBINARY on MySQL, whose BLOBs cannot be keys."""
    return sa.LargeBinary(length).with_variant(mysql.VARBINARY(length), *MYSQL_DIALECTS)


def long_text() -> TypeEngine[str]:
    """Unbounded text that is never indexed (thread ids, namespaces, task paths)."""
    return sa.Text().with_variant(mysql.MEDIUMTEXT(charset="utf8mb4", collation="utf8mb4_bin"), *MYSQL_DIALECTS)


def payload() -> TypeEngine[bytes]:
    """Serialized bytes; MySQL's plain BLOB would stop at 64 kB."""
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL_DIALECTS)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the one text form of a value, so that
    SQLite and MariaDB (which compare JSON as text) match equal documents."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class JSONDocument(TypeDecorator[Any]):
    """A JSON object column: JSONB on PostgreSQL, canonical JSON text elsewhere."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value  # JSONB serializes (and normalises) it itself
        return canonical_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.loads(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time to the microsecond, stored as naive UTC and read back aware.

    MySQL's plain DATETIME drops fractions of a second, which millisecond TTLs and
    "events after t" need. Naive values given to it are taken to be UTC.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Vector(TypeDecorator[list[float]]):
    """An embedding: ``real[]`` on PostgreSQL, so that SQL can score it without an
    extension; little-endian float32 bytes elsewhere, the layout sqlite-vec reads."""

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(postgresql.REAL()))
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(mysql.LONGBLOB())
        return dialect.type_descriptor(sa.LargeBinary())

    def process_bind_param(self, value: Sequence[float] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return [float(x) for x in value]
        return float32_bytes(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> list[float] | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return [float(x) for x in value]
        return list(struct.unpack(f"<{len(value) // 4}f", value))


def float32_bytes(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)
