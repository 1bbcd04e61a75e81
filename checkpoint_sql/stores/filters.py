"""`search(filter=...)` for `SQLStore`: which filters are accepted and the SQL they become.

The semantics are those of LangGraph's `InMemoryStore`, the reference its other stores
follow, evaluated by the database on the item's JSON value:

* ``{"k": v}`` with a scalar ``v``: the member equals ``v`` (``None`` also matches a
  missing member); with a dict ``v`` the member is an object whose listed keys match in
  turn (other keys may exist); with a list ``v`` the member is an array of the same
  length whose elements match in turn.
* ``{"k": {"$op": v, ...}}`` with ``$eq``, ``$ne`` (exact equality of the whole member,
  or its negation: a missing member is "not equal"), ``$gt``, ``$gte``, ``$lt``,
  ``$lte`` (a number against JSON numbers, a string against JSON strings by code point;
  a member of another type does not match). Operators may appear at any depth.

Where typing differs from Python, JSON's types win: ``True`` does not equal ``1``, and
``"3"`` is not greater than ``2``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from checkpoint_sql.core import bounds
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.json_members import Comparison, JsonPath, json_compare, json_kind_is, json_length
from checkpoint_sql.errors import InvalidFilterError
from checkpoint_sql.stores.checks import json_value, preview

OPERATORS: dict[str, Comparison | None] = {
    "$eq": None,
    "$ne": None,
    "$gt": "gt",
    "$gte": "ge",
    "$lt": "lt",
    "$lte": "le",
}


def check_filter(filter: Any, what: str = "search: filter") -> dict[str, Any]:
    """A filter safe to express in SQL on every engine, or `InvalidFilterError` saying
    which key or value is at fault."""
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise InvalidFilterError(f"{what} must be a dict, not {type(filter).__name__}")
    bounds.check_json(filter, what, error=InvalidFilterError)
    _check(filter, what)
    return dict(filter)


def _check(filter: Mapping[Any, Any], where: str) -> None:
    for key, expected in filter.items():
        _check_key(key, where)
        if isinstance(expected, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in expected):
            _check_operators(expected, f"{where}[{key!r}]")
        elif isinstance(expected, Mapping):
            _check(expected, f"{where}[{key!r}]")
        elif isinstance(expected, (list, tuple)):
            _check_items(expected, f"{where}[{key!r}]")
        else:
            _check_scalar(expected, f"{where}[{key!r}]")


def _check_items(expected: list[Any] | tuple[Any, ...], where: str) -> None:
    for i, element in enumerate(expected):
        if isinstance(element, Mapping):
            _check(element, f"{where}[{i}]")
        elif isinstance(element, (list, tuple)):
            _check_items(element, f"{where}[{i}]")
        else:
            _check_scalar(element, f"{where}[{i}]")


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str) or not key or any(c in key for c in '"\\') or not key.isprintable():
        raise InvalidFilterError(
            f"{where}: key {preview(key)} is not allowed; use a non-empty key without double quotes, "
            "backslashes or control characters"
        )


def _check_scalar(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise InvalidFilterError(f"{where} must be JSON (str, number, bool, None, list, dict), not {preview(value)}")


def _check_operators(operators: Mapping[Any, Any], where: str) -> None:
    for name, operand in operators.items():
        if name not in OPERATORS:
            raise InvalidFilterError(
                f"{where}: {preview(name)} is not a filter operator; use one of {', '.join(OPERATORS)} "
                "(and do not mix operators with plain keys in one dict)"
            )
        if OPERATORS[name] is None:
            try:
                json_value(operand, f"{where}[{name!r}]")
            except TypeError as exc:
                raise InvalidFilterError(str(exc)) from None
        elif isinstance(operand, bool) or not isinstance(operand, (int, float, str)):
            raise InvalidFilterError(f"{where}[{name!r}] must be a number or a string, not {preview(operand)}")
        else:
            _check_scalar(operand, f"{where}[{name!r}]")


def condition(family: Family, column: sa.ColumnElement[Any], filter: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
    """The SQL conditions an item's value must meet for a checked `filter`."""
    return [_matches(family, column, (key,), expected) for key, expected in filter.items()]


def _matches(
    family: Family,
    column: sa.ColumnElement[Any],
    path: JsonPath,
    expected: Any,
    *,
    partial: bool = True,
) -> sa.ColumnElement[bool]:
    """``partial``: InMemoryStore's implicit match (an object matches when the keys given
    match, `$` operators apply at any depth; arrays element-wise). Otherwise exact
    equality of the whole member, as Python's ``==`` on the decoded value."""
    if isinstance(expected, Mapping):
        if partial and any(k.startswith("$") for k in expected):
            return sa.and_(*(_operator(family, column, path, name, operand) for name, operand in expected.items()))
        conditions = [json_kind_is(family, column, path, "object")]
        if not partial:
            conditions.append(json_length(family, column, path) == len(expected))
        conditions += [_matches(family, column, (*path, key), sub, partial=partial) for key, sub in expected.items()]
        return sa.and_(*conditions)
    if isinstance(expected, (list, tuple)):
        return sa.and_(
            json_kind_is(family, column, path, "array"),
            json_length(family, column, path) == len(expected),
            *(_matches(family, column, (*path, i), sub, partial=partial) for i, sub in enumerate(expected)),
        )
    return _scalar_equals(family, column, path, expected)


def _scalar_equals(
    family: Family, column: sa.ColumnElement[Any], path: JsonPath, expected: Any
) -> sa.ColumnElement[bool]:
    if expected is None:
        return json_kind_is(family, column, path, "null", or_absent=True)
    return json_compare(family, column, path, "eq", expected)


def _operator(
    family: Family, column: sa.ColumnElement[Any], path: JsonPath, name: str, operand: Any
) -> sa.ColumnElement[bool]:
    if name == "$eq":
        return _matches(family, column, path, operand, partial=False)
    if name == "$ne":
        return sa.not_(sa.func.coalesce(_matches(family, column, path, operand, partial=False), sa.false()))
    comparison = OPERATORS[name]
    assert comparison is not None
    return json_compare(family, column, path, comparison, operand)
