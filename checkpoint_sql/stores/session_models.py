"""What `SessionStore` hands out and takes in: sessions, events, turns, usage, summaries;
and how a state change is split between the three scopes.

State keys route by prefix, as in Google ADK: ``app:theme`` is shared by every user
and session of the app, ``user:name`` by every session of the user, ``temp:...`` lives
only for the current invocation and is never stored, anything else belongs to the
session.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from checkpoint_sql.errors import InvalidArgumentError
from checkpoint_sql.stores.checks import json_value, preview, text_arg
from checkpoint_sql.stores.tables import EVENT_ID_MAX, EVENT_TYPE_MAX

APP_PREFIX = "app:"
USER_PREFIX = "user:"
TEMP_PREFIX = "temp:"
_EVENT_TYPE = re.compile(rf"[A-Za-z0-9_.:-]{{1,{EVENT_TYPE_MAX}}}")


@dataclass
class SessionEvent:
    """One entry of a session's log: who said or did what, in which turn, and the
    state it changed. `seq` (its position, from 1) is set when the store appends it;
    `timestamp` too, unless given."""

    author: str
    content: Any = None
    type: str = "message"
    turn_id: str | None = None
    state_delta: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: datetime | None = None
    seq: int | None = None


@dataclass
class Session:
    """A session as read from the store. `state` merges the three scopes (``app:`` and
    ``user:`` keys included); `last_seq` is the sequence number of its latest event,
    which `append_event` checks to detect concurrent writers."""

    app_name: str
    user_id: str
    id: str
    state: dict[str, Any]
    events: list[SessionEvent]
    last_seq: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Turn:
    """The events of one turn (or, with `turn_id` None, those without a turn), in order."""

    turn_id: str | None
    events: list[SessionEvent]


@dataclass(frozen=True)
class TurnUsage:
    """Token usage of one turn, all records for it merged (counts added up)."""

    turn_id: str
    model: str | None
    input_tokens: int
    output_tokens: int
    records: int
    created_at: datetime
    updated_at: datetime

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class SessionSummary:
    filter_key: str
    summary: str
    topics: list[str]
    updated_at: datetime


@dataclass(frozen=True)
class PurgeResult:
    sessions: int
    events: int


@dataclass(frozen=True)
class Scoped:
    """A state change split by scope, prefixes stripped, ``temp:`` keys dropped."""

    session: dict[str, Any]
    app: dict[str, Any]
    user: dict[str, Any]

    def stored_delta(self) -> dict[str, Any]:
        """The change as recorded on the event: every scope, prefixes kept, no ``temp:``."""
        return {
            **self.session,
            **{APP_PREFIX + k: v for k, v in self.app.items()},
            **{USER_PREFIX + k: v for k, v in self.user.items()},
        }


def split_state(state: Any, what: str) -> Scoped:
    """Check a state mapping (string keys, JSON values) and split it by scope."""
    if state is None:
        return Scoped({}, {}, {})
    if not isinstance(state, Mapping):
        raise InvalidArgumentError(f"{what} must be a dict, not {type(state).__name__}")
    json_value(dict(state), what)
    scoped = Scoped({}, {}, {})
    for key, value in state.items():
        text_arg(key, f"{what} key")
        if key.startswith(TEMP_PREFIX):
            continue
        if key.startswith(APP_PREFIX):
            scoped.app[text_arg(key[len(APP_PREFIX) :], f"{what} key {key!r} after 'app:'")] = value
        elif key.startswith(USER_PREFIX):
            scoped.user[text_arg(key[len(USER_PREFIX) :], f"{what} key {key!r} after 'user:'")] = value
        else:
            scoped.session[key] = value
    return scoped


def merged_state(session: Mapping[str, Any], app: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **session,
        **{APP_PREFIX + k: v for k, v in app.items()},
        **{USER_PREFIX + k: v for k, v in user.items()},
    }


def check_event(event: Any) -> SessionEvent:
    """An event that can be stored, or `InvalidArgumentError` / `SerializationError`
    naming the field at fault."""
    if not isinstance(event, SessionEvent):
        raise InvalidArgumentError(f"append_event: event must be a SessionEvent, not {type(event).__name__}")
    text_arg(event.author, "event author")
    if not isinstance(event.type, str) or not _EVENT_TYPE.fullmatch(event.type):
        raise InvalidArgumentError(
            f"event type {preview(event.type)} must be 1 to {EVENT_TYPE_MAX} letters, digits or '_.:-'"
        )
    if event.turn_id is not None:
        text_arg(event.turn_id, "event turn_id")
    text_arg(event.id, "event id", max_length=EVENT_ID_MAX)
    json_value(event.content, "event content")
    return event
