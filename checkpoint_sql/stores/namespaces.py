"""Store namespaces: which are accepted, how they are keyed and stored, and how a prefix,
a suffix or a wildcard pattern becomes SQL.

A namespace ``("users", "42", "prefs")`` is stored as the UTF-8 of its labels joined by
``\\x01``. That separator sorts below every character a label may hold, so byte order is
LangGraph's tuple order, and "starts with the prefix P" is the byte range
``[P + \\x01, P + \\x02)``: an index range scan on every engine, with no LIKE and no
escaping. Wildcards and suffixes are matched label by label on the JSON array of labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from langgraph.store.base import MatchCondition

from checkpoint_sql.core.ids import TEXT_ID_MAX
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.json_members import json_compare
from checkpoint_sql.errors import InvalidNamespaceError
from checkpoint_sql.stores.checks import preview
from checkpoint_sql.stores.tables import NS_HEAD

SEPARATOR = "\x01"
WILDCARD = "*"
Namespace = tuple[str, ...]


def check_labels(namespace: Any, what: str) -> Namespace:
    """The labels of a namespace, prefix or pattern, refused with `InvalidNamespaceError`
    if one is not a non-empty string, holds a period (LangGraph's own rule, as its
    stores join labels with periods), NUL or ``\\x01`` (our separator), or is not
    valid Unicode. (``"*"`` is a wildcard in `list_namespaces` patterns only.)"""
    if not isinstance(namespace, (tuple, list)):
        raise InvalidNamespaceError(f"{what} must be a tuple of strings, not {type(namespace).__name__}")
    for label in namespace:
        problem = _label_problem(label)
        if problem:
            raise InvalidNamespaceError(f"{what} {preview(tuple(namespace))}: label {preview(label)} {problem}")
    labels = tuple(namespace)
    if len(SEPARATOR.join(labels)) > TEXT_ID_MAX:
        raise InvalidNamespaceError(f"{what} is longer than {TEXT_ID_MAX} characters in all")
    return labels


def _label_problem(label: Any) -> str | None:
    if not isinstance(label, str):
        return f"is a {type(label).__name__}; labels must be strings"
    if not label:
        return "is empty; labels must not be empty strings"
    if "." in label:
        return "contains a period ('.'), which namespace labels cannot hold"
    if "\x00" in label or SEPARATOR in label:
        return "contains a NUL or \\x01 control character, which namespace labels cannot hold"
    try:
        label.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    return None


def check_writable(namespace: Any, what: str) -> Namespace:
    """A namespace an item can be stored under: not empty, and not rooted at
    ``"langgraph"``, which LangGraph reserves."""
    labels = check_labels(namespace, what)
    if not labels:
        raise InvalidNamespaceError(f"{what} must not be empty; store items under a namespace such as ('memories',)")
    if labels[0] == "langgraph":
        raise InvalidNamespaceError(f'{what} {preview(labels)}: the root label "langgraph" is reserved by LangGraph')
    return labels


def encode(namespace: Namespace) -> bytes:
    return SEPARATOR.join(namespace).encode("utf-8")


def decode(stored: bytes) -> Namespace:
    return tuple(bytes(stored).decode("utf-8").split(SEPARATOR))


def item_id(namespace: Namespace, key: str) -> bytes:
    """The 16-byte key of an item: BLAKE2b-128 of its namespace and key (NUL cannot
    occur in either, so the joined text is unambiguous)."""
    return hashlib.blake2b(encode(namespace) + b"\x00" + key.encode("utf-8"), digest_size=16).digest()


def head(stored: bytes) -> bytes:
    return stored[:NS_HEAD]


def within(family: Family, items: sa.Table, prefix: Namespace) -> sa.ColumnElement[bool] | None:
    """Items whose namespace is `prefix` or lies under it; None for the empty prefix."""
    return pattern(family, items, prefix, "prefix")


def matches(family: Family, items: sa.Table, condition: MatchCondition) -> sa.ColumnElement[bool] | None:
    return pattern(family, items, tuple(condition.path), condition.match_type)


def pattern(family: Family, items: sa.Table, path: Sequence[str], match_type: str) -> sa.ColumnElement[bool] | None:
    """Namespaces that start (``prefix``) or end (``suffix``) with `path`, where a
    ``"*"`` label matches any one label.

    The literal labels a prefix starts with become a byte range on the indexed head
    (exact on its own while they fit in the head); the remaining labels are compared
    one by one, by position from the start (prefix) or from the end (suffix).
    """
    if not path:
        return None
    literal: list[str] = []
    if match_type == "prefix":
        for label in path:
            if label == WILDCARD:
                break
            literal.append(label)
    start = encode(tuple(literal))
    ns_head = items.c.ns_head
    conditions: list[sa.ColumnElement[bool]] = []
    checked = 0
    if literal and len(start) < NS_HEAD:
        if len(literal) == len(path):
            return sa.or_(ns_head == start, sa.and_(ns_head >= start + b"\x01", ns_head < start + b"\x02"))
        conditions.append(sa.and_(ns_head >= start + b"\x01", ns_head < start + b"\x02"))
        checked = len(literal)
    elif literal:
        conditions.append(ns_head == head(start))
    conditions.append(items.c.depth >= len(path))
    for position in range(checked, len(path)):
        if path[position] != WILDCARD:
            index = position if match_type == "prefix" else position - len(path)
            conditions.append(json_compare(family, items.c.labels, (index,), "eq", path[position]))
    return sa.and_(*conditions)
