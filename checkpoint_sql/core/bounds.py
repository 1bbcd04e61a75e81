"""What every engine can hold: the one check applied to values before they are bound.

A value the database would refuse (a raw driver error) or store altered (silently)
is refused here instead, before any transaction opens, with a typed error naming the
argument. The limits are those of the most restrictive supported engine, so that a
call means the same on SQLite, PostgreSQL and MySQL/MariaDB:

- integers fit a signed 64-bit column (and SQLite's JSON functions, which turn larger
  ones into floats);
- strings are valid Unicode (no lone surrogates, which UTF-8 cannot encode) and hold
  no NUL character (PostgreSQL's text and JSONB cannot store it);
- JSON documents have string keys only (JSON would turn ``1`` into ``"1"``), finite
  numbers, bounded nesting, and no float that PostgreSQL's JSONB reads back
  otherwise: an integral float of 1e16 or more (printed without exponent, so read
  as an int) or -0.0 (its numeric type has no negative zero);
- durations and times stay within what `datetime` arithmetic can represent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from checkpoint_sql.errors import CheckpointSQLError, InvalidArgumentError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
"""The range of a signed 64-bit integer column, SQLite's INTEGER and JSON integers."""

MAX_DEPTH = 100
"""Deepest nesting accepted in a JSON value; deeper is almost surely a cycle."""

MAX_SECONDS = float(timedelta(days=365 * 1000).total_seconds())
"""Longest duration accepted (a thousand years): any later instant still fits a
`datetime` and every engine's timestamp."""

MIN_SECONDS = 1e-6
"""Shortest duration accepted: a microsecond, the resolution of stored times."""

_EXACT_FLOAT = 1e16
"""From here on, an integral float reads back from JSONB as an int (see module doc)."""


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(
    value: Any,
    what: str,
    *,
    minimum: int = INT_MIN,
    maximum: int = INT_MAX,
    error: type[CheckpointSQLError] = InvalidArgumentError,
) -> int:
    """An int (not a bool) in ``[minimum, maximum]``, which default to the 64-bit range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be an int, not {type(value).__name__} ({_preview(value)})")
    if not minimum <= value <= maximum:
        raise error(f"{what} must be between {minimum} and {maximum}, not {_preview(value)}")
    return value


def check_string(value: str, what: str, *, error: type[CheckpointSQLError] = InvalidArgumentError) -> str:
    """A str every engine stores exactly: no NUL, valid Unicode."""
    if "\x00" in value:
        raise error(f"{what} {_preview(value)} contains a NUL character, which PostgreSQL cannot store")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"{what} {_preview(value)} is not valid Unicode (lone surrogate)") from None
    return value


def check_seconds(value: Any, what: str, *, error: type[CheckpointSQLError] = InvalidArgumentError) -> float:
    """A duration in seconds or a timedelta, from a microsecond (the resolution of
    stored times: anything shorter would be stored as zero) to `MAX_SECONDS`."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise error(
            f"{what} must be a positive number of seconds (from a microsecond to {MAX_SECONDS:.0f}, a "
            f"thousand years) or a timedelta, not {_preview(value)}"
        )
    return float(seconds)


def check_time(value: datetime, what: str, *, error: type[CheckpointSQLError] = InvalidArgumentError) -> datetime:
    """A datetime a thousand years clear of `datetime`'s limits, so arithmetic on it
    with any accepted duration cannot overflow."""
    margin = timedelta(seconds=MAX_SECONDS)
    if not datetime.min + margin <= value.replace(tzinfo=None) <= datetime.max - margin:
        raise error(f"{what} {value.isoformat()} is out of range")
    return value


def check_json(value: Any, what: str, *, error: type[CheckpointSQLError]) -> Any:
    """`value` if it is a JSON document every engine stores and returns unchanged;
    otherwise `error` naming the path to the offending member (``what['a'][0]``)."""
    _check_member(value, what, 0, error)
    return value


def _check_member(value: Any, path: str, depth: int, error: type[CheckpointSQLError]) -> None:
    if isinstance(value, str):
        check_string(value, path, error=error)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        check_int(value, path, error=error)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise error(f"{path} is {value!r}, which is not JSON (numbers must be finite)")
        if abs(value) >= _EXACT_FLOAT and value.is_integer():
            raise error(
                f"{path} is the float {value!r}, which PostgreSQL's JSONB reads back as an int; "
                "store it as a string or an int"
            )
        if value == 0 and math.copysign(1, value) < 0:
            raise error(f"{path} is -0.0, which PostgreSQL's JSONB reads back as 0.0; store 0.0")
    elif depth >= MAX_DEPTH:
        raise error(f"{path[:80]}... is nested over {MAX_DEPTH} levels deep (or refers to itself)")
    elif isinstance(value, Mapping):
        for key, member in value.items():
            if not isinstance(key, str):
                raise error(f"{path} has the key {_preview(key)}, not a str; JSON keys are strings")
            check_string(key, f"key of {path}", error=error)
            _check_member(member, f"{path}[{key!r}]", depth + 1, error)
    elif isinstance(value, (list, tuple)):
        for i, member in enumerate(value):
            _check_member(member, f"{path}[{i}]", depth + 1, error)
    else:
        kind = type(value).__name__
        raise error(f"{path} must be JSON (str, number, bool, None, list or dict); a {kind} is not JSON")
