"""The saver's metadata filter (``list(filter=...)``, the command's ``--filter``):
``metadata[key] == value`` for each key, as tests on `json_members.Member`.

The SQL of a test depends only on its kind; where the member is and what it must
equal are bound, so one cached statement serves every filter of the same shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.columns import canonical_json
from checkpoint_sql.dialects.json_members import JsonPath, Member, locator


def json_filters(family: Family, key: str, value: Any) -> list[tuple[str, str | list[str], Any]]:
    """How `json_member_equals` matches ``metadata[key] == value`` on this engine: one
    or more tests, each the kind of comparison (part of the SQL's shape) and the two
    bound values (the member's `json_members.locator`, what it must equal).

    Equality is as in Python and LangGraph's `InMemorySaver`, on every engine: numbers
    by value (``1`` matches ``1.0``, also inside objects and arrays), strings exactly
    (``"1"`` does not match ``1``), booleans only as booleans, objects and arrays
    member by member, and a top-level ``None`` matches null or absent. PostgreSQL's
    JSONB equality is exactly that; SQLite and MySQL compare JSON as text, so there a
    nested value becomes one test per member plus a test of each container's kind and
    size. Callers must first reject keys containing ``"`` or ``\\``, which a JSON
    path in SQLite or MySQL cannot quote.
    """
    if family == "postgresql":
        return [("null" if value is None else "json", locator(family, (key,)), canonical_json(value))]
    return [(kind, locator(family, path), expected) for kind, path, expected in _member_tests((key,), value, top=True)]


def metadata_tests(family: Family, filter: Mapping[str, Any]) -> list[tuple[str, str | list[str], Any]]:
    """`json_filters` of every key of a metadata filter, in order."""
    return [test for key, value in filter.items() for test in json_filters(family, key, value)]


def _member_tests(path: JsonPath, value: Any, *, top: bool = False) -> Iterator[tuple[str, JsonPath, Any]]:
    if value is None:
        yield ("null" if top else "is_null"), path, None
    elif isinstance(value, bool):
        yield ("true" if value else "false"), path, None
    elif isinstance(value, str):
        yield "text", path, value
    elif isinstance(value, (int, float)):
        yield "number", path, value
    elif isinstance(value, Mapping):
        yield "object", path, len(value)
        for member_key, member in value.items():
            yield from _member_tests((*path, member_key), member)
    else:
        yield "array", path, len(value)
        for i, member in enumerate(value):
            yield from _member_tests((*path, i), member)


def json_member_equals(
    family: Family,
    column: sa.ColumnElement[Any],
    kind: str,
    at: sa.BindParameter[Any],
    value: sa.BindParameter[Any],
) -> sa.ColumnElement[bool]:
    """One test of `json_filters` on `column`, a JSON object (both arguments bound,
    never spliced into the SQL)."""
    member = Member.bound(family, column, at)
    if family == "postgresql":
        found = member.json()
        if kind == "null":
            return sa.or_(found.is_(None), found == sa.cast(sa.literal_column("'null'"), postgresql.JSONB()))
        return found == sa.cast(value, postgresql.JSONB())
    json_kind = member.type_name()
    if family == "mysql":
        extracted = member.json()
        if kind == "null":
            return sa.or_(extracted.is_(None), json_kind == sa.literal_column("'NULL'"))
        if kind == "is_null":
            return json_kind == sa.literal_column("'NULL'")
        if kind in ("true", "false"):
            return sa.and_(
                json_kind == sa.literal_column("'BOOLEAN'"),
                sa.cast(extracted, sa.LargeBinary()) == sa.literal_column(f"'{kind}'"),
            )
        if kind == "text":
            # MariaDB's JSON is text in the column's collation: compare bytes, not letters.
            return sa.and_(
                json_kind == sa.literal_column("'STRING'"),
                sa.cast(member.text(), sa.LargeBinary()) == sa.cast(value, sa.LargeBinary()),
            )
        if kind == "number":
            return sa.and_(
                json_kind.in_([sa.literal_column("'INTEGER'"), sa.literal_column("'DOUBLE'")]),
                sa.cast(extracted, mysql.DOUBLE()) == sa.cast(value, mysql.DOUBLE()),
            )
        return sa.and_(json_kind == sa.literal_column(f"'{kind.upper()}'"), member.size() == value)
    if kind == "null":
        return sa.or_(json_kind.is_(None), json_kind == sa.literal_column("'null'"))
    if kind in ("is_null", "true", "false", "object", "array"):
        test = json_kind == sa.literal_column(f"'{'null' if kind == 'is_null' else kind}'")
        if kind in ("object", "array"):
            return sa.and_(test, member.size() == value)
        return test
    extracted = member.json()
    if kind == "text":
        return sa.and_(json_kind == sa.literal_column("'text'"), extracted == value)
    return sa.and_(json_kind.in_([sa.literal_column("'integer'"), sa.literal_column("'real'")]), extracted == value)
