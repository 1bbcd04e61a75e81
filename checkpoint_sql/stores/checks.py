"""Input checks shared by the companion stores: every public method runs its arguments
through these before any SQL, so a rejected call leaves the database as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from checkpoint_sql.core import bounds
from checkpoint_sql.core.ids import TEXT_ID_MAX, check_text, key_of
from checkpoint_sql.errors import InvalidArgumentError, SerializationError

T = TypeVar("T")

Clock = Callable[[], datetime]
"""Where the stores read the time (TTLs, timestamps); injectable so tests need not sleep."""

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
    """A count or position: an int from `minimum` up to what a 64-bit column holds."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{what} must be an int >= {minimum}, not {preview(value)}")
    return bounds.check_int(value, what, minimum=minimum)


def time_arg(value: Any, what: str) -> datetime:
    """A point in time; a naive datetime is taken to be UTC, as the stores keep UTC."""
    if not isinstance(value, datetime):
        raise InvalidArgumentError(f"{what} must be a datetime, not {type(value).__name__} ({preview(value)})")
    bounds.check_time(value, what)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def seconds_arg(value: Any, what: str) -> float:
    """A positive, finite duration in seconds, or a timedelta (see `bounds.check_seconds`)."""
    return bounds.check_seconds(value, what)


def json_value(value: Any, what: str) -> Any:
    """A value that round-trips through JSON unchanged on every engine, or a
    `SerializationError` naming the member at fault (see `bounds.check_json`)."""
    return bounds.check_json(value, what, error=SerializationError)


def json_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SerializationError(f"{what} must be a dict (a JSON object), not {type(value).__name__}")
    return dict(json_value(value, what))


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
