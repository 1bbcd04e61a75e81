"""Members of JSON document columns, addressed and read the one way each engine has.

Both languages that look inside stored JSON are written on `Member`: the stores'
filters and sorts (a path, compared with the member's JSON type: `json_compare` and
its siblings below) and the saver's metadata filter (`metadata_filter`). A member is
found by a *locator*: a text array of steps for PostgreSQL's ``#>``, a JSON path
text (``$."a"[0]``) for SQLite's and MySQL's functions. What differs between the
engines is then only what each knows about a member: its type's name, its value,
its text, its size.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.columns import canonical_json

JsonPath = tuple[str | int, ...]
"""A member of a JSON document: object keys and array indexes (negative: from the end).
Keys must not contain ``"`` or ``\\``, which SQLite's and MySQL's path syntax cannot quote."""
JsonKind = Literal["object", "array", "string", "number", "boolean", "null"]
Comparison = Literal["eq", "gt", "ge", "lt", "le"]

_SQLITE_KINDS: dict[str, tuple[str, ...]] = {
    "object": ("object",),
    "array": ("array",),
    "string": ("text",),
    "number": ("integer", "real"),
    "boolean": ("true", "false"),
    "null": ("null",),
}
_MYSQL_KINDS: dict[str, tuple[str, ...]] = {
    "object": ("OBJECT",),
    "array": ("ARRAY",),
    "string": ("STRING",),
    "number": ("INTEGER", "UNSIGNED INTEGER", "DOUBLE", "DECIMAL"),
    "boolean": ("BOOLEAN",),
    "null": ("NULL",),
}


def locator(family: Family, path: JsonPath) -> str | list[str]:
    """The value that finds the member at `path` on this engine, for binding."""
    if family == "postgresql":
        return [str(step) for step in path]
    return _path_text(path)


def _path_text(path: JsonPath) -> str:
    """`path` in SQLite's and MySQL's syntax (negative indexes: SQLite's ``[#-1]``)."""
    parts = ["$"]
    for step in path:
        if isinstance(step, str):
            parts.append(f'."{step}"')
        else:
            parts.append(f"[{step}]" if step >= 0 else f"[#{step}]")
    return "".join(parts)


def _mysql_path(column: sa.ColumnElement[Any], path: JsonPath) -> sa.ColumnElement[str]:
    """`path` for MySQL/MariaDB. A negative index becomes a per-row computed one:
    MariaDB 10.11 resolves ``[last]`` and ``[-1]`` against the first row's array and
    reuses that position for every later row."""
    if not any(isinstance(step, int) and step < 0 for step in path):
        return sa.literal(_path_text(path), sa.Text())
    built: sa.ColumnElement[str] = sa.literal("$", sa.Text())
    for step in path:
        if isinstance(step, int) and step < 0:
            index = sa.func.json_length(column, built) + step
            built = sa.case((index >= 0, sa.func.concat(built, "[", index, "]")))
        else:
            built = sa.func.concat(built, _path_text((step,))[1:])
    return built


class Member:
    """The member of the JSON column `column` that the locator `at` finds (NULL
    throughout when there is none)."""

    def __init__(self, family: Family, column: sa.ColumnElement[Any], at: sa.ColumnElement[Any]) -> None:
        self.family, self.column, self.at = family, column, at

    @classmethod
    def at_path(cls, family: Family, column: sa.ColumnElement[Any], path: JsonPath) -> Member:
        """The member at `path`, its locator written into the statement."""
        if family == "mysql":
            return cls(family, column, _mysql_path(column, path))
        if family == "postgresql":
            return cls(family, column, sa.literal(locator(family, path), postgresql.ARRAY(sa.Text())))
        return cls(family, column, sa.literal(_path_text(path), sa.Text()))

    @classmethod
    def bound(cls, family: Family, column: sa.ColumnElement[Any], at: sa.BindParameter[Any]) -> Member:
        """The member whose `locator` is bound as `at`: one statement for every path."""
        return cls(family, column, sa.cast(at, postgresql.ARRAY(sa.Text())) if family == "postgresql" else at)

    def json(self) -> sa.ColumnElement[Any]:
        """The member's value: JSONB on PostgreSQL, JSON on MySQL, and on SQLite the SQL
        value of a scalar (text, number, NULL for null) or the JSON text of a container."""
        if self.family == "postgresql":
            return self.column.op("#>", return_type=postgresql.JSONB())(self.at)
        return sa.func.json_extract(self.column, self.at)

    def text(self) -> sa.ColumnElement[str]:
        """A string member's characters, unquoted."""
        if self.family == "postgresql":
            return self.column.op("#>>", return_type=sa.Text())(self.at)
        if self.family == "mysql":
            return sa.func.json_unquote(self.json(), type_=sa.Text())
        return sa.func.json_extract(self.column, self.at, type_=sa.Text())

    def type_name(self) -> sa.ColumnElement[str]:
        """The engine's name of the member's JSON type (see `is_kind` for the names)."""
        if self.family == "postgresql":
            return sa.func.jsonb_typeof(self.json())
        if self.family == "mysql":
            return sa.func.json_type(self.json())
        return sa.func.json_type(self.column, self.at)

    def is_kind(self, kind: JsonKind, *, or_absent: bool = False) -> sa.ColumnElement[bool]:
        """Whether the member is of JSON type `kind` (or, with `or_absent`, is missing).
        NULL or false when it is missing and `or_absent` is not set."""
        found = self.type_name()
        names = {"postgresql": (kind,), "mysql": _MYSQL_KINDS[kind], "sqlite": _SQLITE_KINDS[kind]}[self.family]
        if or_absent:
            found = sa.func.coalesce(found, "")
            names = (*names, "")
        return found.in_(names)

    def size(self) -> sa.ColumnElement[int]:
        """How many elements (array) or members (object) the member has. Of a scalar:
        NULL on PostgreSQL, 1 on SQLite and MySQL."""
        if self.family == "mysql":
            return sa.func.json_length(self.column, self.at)
        if self.family == "postgresql":
            member = self.json()
            keys = sa.func.jsonb_object_keys(member).table_valued("k")
            return sa.case(
                (sa.func.jsonb_typeof(member) == "array", sa.func.jsonb_array_length(member)),
                (
                    sa.func.jsonb_typeof(member) == "object",
                    sa.select(sa.func.count()).select_from(keys).scalar_subquery(),
                ),
            )
        each = sa.func.json_each(self.column, self.at).table_valued("key")
        return sa.select(sa.func.count()).select_from(each).scalar_subquery()


def json_kind_is(
    family: Family, column: sa.ColumnElement[Any], path: JsonPath, kind: JsonKind, *, or_absent: bool = False
) -> sa.ColumnElement[bool]:
    """`Member.is_kind` of the member at `path`."""
    return Member.at_path(family, column, path).is_kind(kind, or_absent=or_absent)


def json_text(family: Family, column: sa.ColumnElement[Any], path: JsonPath) -> sa.ColumnElement[str]:
    """The string member at `path` as SQL text (NULL if absent)."""
    return Member.at_path(family, column, path).text()


def json_compare(
    family: Family, column: sa.ColumnElement[Any], path: JsonPath, comparison: Comparison, value: str | float | bool
) -> sa.ColumnElement[bool]:
    """``member <comparison> value`` where the member at `path` has the JSON type of
    `value`: numbers compare as numbers, strings by code point, booleans only for
    equality. A member of another type, or none, does not match (false or NULL)."""
    compare = {"eq": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}[comparison]
    member = Member.at_path(family, column, path)
    if isinstance(value, bool):
        if comparison != "eq":
            raise ValueError("booleans only compare for equality")
        if family == "sqlite":
            return member.type_name() == str(value).lower()
        return sa.and_(member.is_kind("boolean"), member.text() == str(value).lower())
    kind: JsonKind = "string" if isinstance(value, str) else "number"
    found: sa.ColumnElement[Any]
    expected: sa.ColumnElement[Any]
    if family == "postgresql":
        if kind == "number":
            found = member.json()
            expected = sa.cast(sa.literal(canonical_json(value), sa.Text()), postgresql.JSONB())
        else:
            found, expected = member.text().collate("C"), sa.literal(value, sa.Text())
    elif family == "mysql":
        if kind == "number":
            found, expected = sa.cast(member.json(), mysql.DOUBLE()), sa.literal(float(value), sa.Float())
        else:
            found = sa.cast(member.text(), sa.LargeBinary())
            expected = sa.cast(sa.literal(value, sa.Text()), sa.LargeBinary())
    else:
        found, expected = member.json(), sa.literal(value)
    return sa.and_(member.is_kind(kind), found.op(compare, is_comparison=True)(expected))


def json_length(family: Family, column: sa.ColumnElement[Any], path: JsonPath) -> sa.ColumnElement[int]:
    """How many elements (array) or members (object) the member at `path` has; check
    its kind too, as scalars count as NULL on some engines and 1 on MySQL."""
    member = Member.at_path(family, column, path)
    if family == "sqlite":
        return sa.case((sa.or_(member.is_kind("array"), member.is_kind("object")), member.size()))
    return member.size()
