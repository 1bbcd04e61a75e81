"""`SessionStore`'s operations: functions of one sync `Connection`, each run in one
transaction by `Database.run` or, unchanged, by `Database.arun`.

Appending is optimistic: the session row's ``last_seq`` is read with a row lock, must
equal the sequence number the writer's copy knew, and moves one step with the insert
of the event numbered after it. A writer holding a stale copy gets
`SessionConflictError` and its transaction writes nothing; no event is ever lost,
duplicated or reordered, whatever the clocks say.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from checkpoint_sql.core.ids import key_of
from checkpoint_sql.dialects import Family
from checkpoint_sql.dialects.statements import upsert, upsert_adding
from checkpoint_sql.errors import SessionConflictError, SessionExistsError, SessionNotFoundError
from checkpoint_sql.stores.checks import chunks
from checkpoint_sql.stores.session_models import (
    PurgeResult,
    Scoped,
    Session,
    SessionEvent,
    SessionSummary,
    TurnUsage,
    merged_state,
)
from checkpoint_sql.stores.tables import StoreTables


@dataclass(frozen=True, slots=True)
class Keys:
    """A session's ids and the hashed keys its rows are stored under."""

    app_name: str
    user_id: str
    session_id: str
    session_key: bytes
    app_key: bytes
    user_key: bytes

    def describe(self) -> str:
        return f"session {self.session_id!r} (app {self.app_name!r}, user {self.user_id!r})"


@dataclass(frozen=True, slots=True)
class EventQuery:
    types: tuple[str, ...] | None = None
    turn_key: bytes | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int | None = None
    limit: int | None = None
    last_n: int | None = None


def _event(row: Row[Any]) -> SessionEvent:
    return SessionEvent(
        author=row.author,
        content=row.content,
        type=row.type,
        turn_id=row.turn_id,
        state_delta=row.state_delta,
        id=row.event_id,
        timestamp=row.created_at,
        seq=row.seq,
    )


def _usage(row: Row[Any]) -> TurnUsage:
    return TurnUsage(
        turn_id=row.turn_id,
        model=row.model,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        records=row.records,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _scope(conn: Connection, table: sa.Table, owner: str, keys: Iterable[bytes]) -> dict[bytes, dict[str, Any]]:
    """The stored state of each owner (app or user) key."""
    found: dict[bytes, dict[str, Any]] = {}
    for chunk in chunks(sorted(set(keys))):
        query = sa.select(table.c[owner].label("owner"), table.c.key, table.c.value).where(table.c[owner].in_(chunk))
        for row in conn.execute(query):
            found.setdefault(bytes(row.owner), {})[row.key] = row.value
    return found


def _put_scope(
    conn: Connection,
    family: Family,
    table: sa.Table,
    owner: str,
    owner_key: bytes,
    values: dict[str, Any],
    now: datetime,
) -> None:
    rows = [
        {owner: owner_key, "state_key": key_of(key), "key": key, "value": value, "updated_at": now}
        for key, value in sorted(values.items())
    ]
    if rows:
        conn.execute(upsert(family, table, ["value", "updated_at"]), rows)


def _session(conn: Connection, t: StoreTables, row: Row[Any], events: list[SessionEvent]) -> Session:
    app = _scope(conn, t.app_state, "app_key", [row.app_key]).get(bytes(row.app_key), {})
    user = _scope(conn, t.user_state, "user_key", [row.user_key]).get(bytes(row.user_key), {})
    return Session(
        app_name=row.app_name,
        user_id=row.user_id,
        id=row.session_id,
        state=merged_state(row.state, app, user),
        events=events,
        last_seq=row.last_seq,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _session_row(conn: Connection, t: StoreTables, session_key: bytes, *, lock: bool = False) -> Row[Any] | None:
    query = sa.select(t.sessions).where(t.sessions.c.session_key == session_key)
    return conn.execute(query.with_for_update() if lock else query).first()


def _existing(conn: Connection, t: StoreTables, keys: Keys) -> Row[Any]:
    row = _session_row(conn, t, keys.session_key)
    if row is None:
        raise SessionNotFoundError(f"{keys.describe()} does not exist")
    return row


def create_session(
    conn: Connection, t: StoreTables, family: Family, keys: Keys, state: Scoped, now: datetime
) -> Session:
    row = {
        "session_key": keys.session_key,
        "app_key": keys.app_key,
        "user_key": keys.user_key,
        "app_name": keys.app_name,
        "user_id": keys.user_id,
        "session_id": keys.session_id,
        "state": state.session,
        "last_seq": 0,
        "created_at": now,
        "updated_at": now,
    }
    try:
        conn.execute(sa.insert(t.sessions), row)
    except IntegrityError:
        raise SessionExistsError(f"{keys.describe()} already exists; pick another id or get_session() it") from None
    _put_scope(conn, family, t.app_state, "app_key", keys.app_key, state.app, now)
    _put_scope(conn, family, t.user_state, "user_key", keys.user_key, state.user, now)
    stored = _session_row(conn, t, keys.session_key)
    assert stored is not None
    return _session(conn, t, stored, [])


def get_session(conn: Connection, t: StoreTables, keys: Keys, query: EventQuery) -> Session | None:
    row = _session_row(conn, t, keys.session_key)
    if row is None:
        return None
    return _session(conn, t, row, _events(conn, t, keys.session_key, query))


def list_sessions(conn: Connection, t: StoreTables, app_key: bytes, user_key: bytes | None) -> list[Session]:
    """Sessions without their events, most recently updated first."""
    s = t.sessions
    owner = s.c.app_key == app_key if user_key is None else s.c.user_key == user_key
    rows = conn.execute(sa.select(s).where(owner).order_by(s.c.updated_at.desc(), s.c.session_key)).all()
    apps = _scope(conn, t.app_state, "app_key", [app_key])
    users = _scope(conn, t.user_state, "user_key", [bytes(r.user_key) for r in rows])
    return [
        Session(
            app_name=r.app_name,
            user_id=r.user_id,
            id=r.session_id,
            state=merged_state(r.state, apps.get(app_key, {}), users.get(bytes(r.user_key), {})),
            events=[],
            last_seq=r.last_seq,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


def _delete_sessions(conn: Connection, t: StoreTables, session_keys: Sequence[bytes]) -> tuple[int, int]:
    """Delete sessions with their events, summaries and usage; (sessions, events) deleted."""
    sessions = events = 0
    for chunk in chunks(session_keys):
        events += conn.execute(sa.delete(t.events).where(t.events.c.session_key.in_(chunk))).rowcount
        for table in (t.summaries, t.usage):
            conn.execute(sa.delete(table).where(table.c.session_key.in_(chunk)))
        sessions += conn.execute(sa.delete(t.sessions).where(t.sessions.c.session_key.in_(chunk))).rowcount
    return sessions, events


def delete_session(conn: Connection, t: StoreTables, session_key: bytes) -> bool:
    return _delete_sessions(conn, t, [session_key])[0] > 0


def purge(conn: Connection, t: StoreTables, cutoff: datetime) -> PurgeResult:
    """Delete the sessions last updated before `cutoff`. They are locked first, so an
    append racing the purge either lands before it (and the session is kept) or finds
    the session gone."""
    s = t.sessions
    query = sa.select(s.c.session_key).where(s.c.updated_at < cutoff).with_for_update()
    keys = [bytes(k) for k in conn.execute(query).scalars()]
    sessions, events = _delete_sessions(conn, t, keys)
    return PurgeResult(sessions=sessions, events=events)


def append_event(
    conn: Connection,
    t: StoreTables,
    family: Family,
    keys: Keys,
    expected_seq: int,
    event: SessionEvent,
    state: Scoped,
    event_limit: int | None,
    now: datetime,
) -> tuple[int, datetime]:
    """Store `event` as number ``expected_seq + 1``; its sequence number and timestamp."""
    row = _session_row(conn, t, keys.session_key, lock=True)
    if row is None:
        raise SessionNotFoundError(f"{keys.describe()} does not exist (deleted meanwhile?); the event was not stored")
    if row.last_seq != expected_seq:
        raise SessionConflictError(
            f"{keys.describe()} changed since this copy was read: it knew event {expected_seq}, the store is at "
            f"{row.last_seq}. The event was not stored; get_session() again and append to the fresh copy.",
            expected_seq=expected_seq,
            actual_seq=row.last_seq,
        )
    seq = expected_seq + 1
    stamp = event.timestamp or now
    sessions = t.sessions
    conn.execute(
        sa.update(sessions)
        .where(sessions.c.session_key == keys.session_key)
        .values(last_seq=seq, state={**row.state, **state.session}, updated_at=now)
    )
    conn.execute(
        sa.insert(t.events),
        {
            "session_key": keys.session_key,
            "seq": seq,
            "event_id": event.id,
            "author": event.author,
            "type": event.type,
            "turn_key": None if event.turn_id is None else key_of(event.turn_id),
            "turn_id": event.turn_id,
            "content": event.content,
            "state_delta": state.stored_delta(),
            "created_at": stamp,
        },
    )
    _put_scope(conn, family, t.app_state, "app_key", keys.app_key, state.app, now)
    _put_scope(conn, family, t.user_state, "user_key", keys.user_key, state.user, now)
    if event_limit is not None and seq > event_limit:
        events = t.events
        conn.execute(
            sa.delete(events).where(events.c.session_key == keys.session_key, events.c.seq <= seq - event_limit)
        )
    return seq, stamp


def _events(conn: Connection, t: StoreTables, session_key: bytes, query: EventQuery) -> list[SessionEvent]:
    e = t.events
    conditions = [e.c.session_key == session_key]
    if query.types is not None:
        conditions.append(e.c.type.in_(query.types))
    if query.turn_key is not None:
        conditions.append(e.c.turn_key == query.turn_key)
    if query.since is not None:
        conditions.append(e.c.created_at >= query.since)
    if query.until is not None:
        conditions.append(e.c.created_at < query.until)
    if query.after_seq is not None:
        conditions.append(e.c.seq > query.after_seq)
    select = sa.select(e).where(*conditions)
    if query.last_n is not None:
        rows = conn.execute(select.order_by(e.c.seq.desc()).limit(query.last_n)).all()[::-1]
    else:
        rows = conn.execute(select.order_by(e.c.seq).limit(query.limit)).all()
    return [_event(row) for row in rows]


def query_events(conn: Connection, t: StoreTables, keys: Keys, query: EventQuery) -> list[SessionEvent]:
    _existing(conn, t, keys)
    return _events(conn, t, keys.session_key, query)


def record_usage(conn: Connection, t: StoreTables, family: Family, keys: Keys, row: dict[str, Any]) -> TurnUsage:
    _existing(conn, t, keys)
    replace = ["updated_at"] if row["model"] is None else ["updated_at", "model"]
    conn.execute(upsert_adding(family, t.usage, ["input_tokens", "output_tokens", "records"], replace), row)
    u = t.usage
    stored = conn.execute(sa.select(u).where(u.c.session_key == keys.session_key, u.c.turn_key == row["turn_key"]))
    return _usage(stored.one())


def list_usage(conn: Connection, t: StoreTables, keys: Keys) -> list[TurnUsage]:
    _existing(conn, t, keys)
    u = t.usage
    rows = conn.execute(sa.select(u).where(u.c.session_key == keys.session_key).order_by(u.c.created_at, u.c.turn_key))
    return [_usage(row) for row in rows]


def put_summary(conn: Connection, t: StoreTables, family: Family, keys: Keys, row: dict[str, Any]) -> SessionSummary:
    _existing(conn, t, keys)
    conn.execute(upsert(family, t.summaries, ["summary", "topics", "updated_at"]), row)
    return SessionSummary(row["filter_key"], row["summary"], row["topics"], row["updated_at"])


def get_summary(conn: Connection, t: StoreTables, keys: Keys, filter_key: str) -> SessionSummary | None:
    _existing(conn, t, keys)
    s = t.summaries
    row = conn.execute(
        sa.select(s).where(s.c.session_key == keys.session_key, s.c.filter_hash == key_of(filter_key))
    ).first()
    return None if row is None else SessionSummary(row.filter_key, row.summary, row.topics, row.updated_at)


def transcript(conn: Connection, t: StoreTables, keys: Keys) -> tuple[Session, list[TurnUsage], list[SessionSummary]]:
    """Everything a transcript shows, read in one transaction so the parts agree."""
    row = _existing(conn, t, keys)
    session = _session(conn, t, row, _events(conn, t, keys.session_key, EventQuery()))
    s = t.summaries
    summaries = [
        SessionSummary(r.filter_key, r.summary, r.topics, r.updated_at)
        for r in conn.execute(sa.select(s).where(s.c.session_key == keys.session_key).order_by(s.c.filter_key))
    ]
    return session, list_usage(conn, t, keys), summaries
