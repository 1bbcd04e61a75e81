"""Input checks shared by the companion stores: every public method runs its arguments
through these before any SQL, so a rejected call leaves the database as it was."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from checkpoint_sql import dialects
from checkpoint_sql.errors import InvalidArgumentError, SerializationError
from checkpoint_sql.ids import TEXT_ID_MAX, check_text, key_of

T = TypeVar("T")

Clock = Callable[[], datetime]
"""Where the stores read the time (TTLs, timestamps); injectable so tests need not sleep."""

MAX_DEPTH = 100
"""Deepest nesting accepted in a JSON value; deeper is almost surely a cycle."""

CHUNK = 500
"""Keys per ``IN (...)`` list: far below every engine's bound-parameter limit."""


def key_of_parts(*parts: str) -> bytes:
    """The 16-byte key of a tuple of ids (app, user, session...): `key_of` of their
    NUL-joined text, unambiguous since `text_arg` refuses NUL."""
    return key_of("\x00".join(parts))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def text_arg(value: Any, what: str, *, allow_empty: bool = False, max_length: int = TEXT_ID_MAX) -> str:
    """A caller-chosen name or id: a str every engine can store (see `ids.check_text`)."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a str, not {type(value).__name__} ({preview(value)})")
    return check_text(value, what, allow_empty=allow_empty, max_length=max_length, error=InvalidArgumentError)


def count_arg(value: Any, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{what} must be an int >= {minimum}, not {preview(value)}")
    return value


def time_arg(value: Any, what: str) -> datetime:
    """A point in time; a naive datetime is taken to be UTC, as the stores keep UTC."""
    if not isinstance(value, datetime):
        raise InvalidArgumentError(f"{what} must be a datetime, not {type(value).__name__} ({preview(value)})")
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def seconds_arg(value: Any, what: str) -> float:
    """A positive, finite duration in seconds, or a timedelta."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgumentError(f"{what} must be a positive number of seconds or a timedelta, not {preview(value)}")
    return float(seconds)


def json_value(value: Any, what: str) -> Any:
    """A value that round-trips through JSON unchanged on every engine.

    Refused (with `SerializationError`): object keys that are not strings (JSON would
    turn them into strings), NUL characters in strings (PostgreSQL's JSONB rejects
    them), nesting deeper than `MAX_DEPTH` (or circular), NaN and infinities, and
    whatever else `json` cannot encode.
    """
    for path, item in _walk(value, what, 0):
        if isinstance(item, Mapping):
            for key in item:
                if not isinstance(key, str):
                    raise SerializationError(f"{path} has the key {key!r}, not a str; JSON keys are strings")
        elif isinstance(item, str) and "\x00" in item:
            raise SerializationError(f"{path} contains a NUL character, which PostgreSQL's JSONB cannot store")
    try:
        dialects.canonical_json(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{what} is not JSON: {exc}") from None
    return value


def json_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SerializationError(f"{what} must be a dict (a JSON object), not {type(value).__name__}")
    return dict(json_value(value, what))


def _walk(value: Any, path: str, depth: int) -> Iterator[tuple[str, Any]]:
    if depth > MAX_DEPTH:
        raise SerializationError(f"{path[:80]}... is nested over {MAX_DEPTH} levels deep (or refers to itself)")
    yield path, value
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                yield f"{path}[{key!r}]", key
            yield from _walk(item, f"{path}[{key!r}]", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]", depth + 1)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
