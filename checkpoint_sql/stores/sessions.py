"""`SessionStore`: conversations as sessions with scoped state and an ordered event log,
in the shape of Google ADK's session services, plus what the seed's session stores
offer (turns, usage, summaries, transcripts, retention, read-only inspection).

Sessions are keyed by (app name, user id, session id). Every method comes as a sync and
an ``a``-prefixed async twin running the same operation (`session_ops`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from checkpoint_sql.core import engines
from checkpoint_sql.core.engines import EngineOptions
from checkpoint_sql.core.ids import key_of
from checkpoint_sql.core.tables import DEFAULT_PREFIX
from checkpoint_sql.dialects.transactions import read_only_sql, read_only_url
from checkpoint_sql.errors import InvalidArgumentError, ReadOnlyError
from checkpoint_sql.stores import session_ops, transcript
from checkpoint_sql.stores.checks import Clock, count_arg, json_value, key_of_parts, text_arg, time_arg, utc_now
from checkpoint_sql.stores.component import Call, Component, Intent, Target, same
from checkpoint_sql.stores.session_models import (
    PurgeResult,
    Session,
    SessionEvent,
    SessionSummary,
    Turn,
    TurnUsage,
    check_event,
    split_state,
)
from checkpoint_sql.stores.session_ops import EventQuery, Keys


def _keys(app_name: Any, user_id: Any, session_id: Any) -> Keys:
    app_name = text_arg(app_name, "app_name")
    user_id = text_arg(user_id, "user_id")
    session_id = text_arg(session_id, "session_id")
    return Keys(
        app_name=app_name,
        user_id=user_id,
        session_id=session_id,
        session_key=key_of_parts(app_name, user_id, session_id),
        app_key=key_of_parts(app_name),
        user_key=key_of_parts(app_name, user_id),
    )


def _read_only(conn: Connection, sql: str, op: Any, *args: Any) -> Any:
    """Run `op` in a transaction the server itself keeps from writing."""
    conn.exec_driver_sql(sql)
    return op(conn, *args)


class SessionStore(Component):
    """Sessions, their events and their state, sync and async.

    Args:
        target: a database URL, None (``$CHECKPOINT_SQL_URL`` or the embedded SQLite
            file), an ``Engine`` / ``AsyncEngine``, or a shared `Database`.
        event_limit: keep at most this many events per session, deleting the oldest
            on append (None: keep all).
        read_only: open an existing database for inspection: every write, and
            `setup()`, raises `ReadOnlyError`; a SQLite file is opened read-only (it
            must exist) and PostgreSQL transactions are declared READ ONLY.
        async_engine, table_prefix, schema, engine_options: as for `SQLSaver`.
        clock: where the time comes from; for tests.

    Every method checks its arguments before touching the database: an id that is not
    a non-empty string, a negative count, a time that is not a datetime raise
    `InvalidArgumentError`; non-JSON content or state `SerializationError`. Methods
    that need an existing session raise `SessionNotFoundError` (`get_session` returns
    None instead); writes on a read-only store raise `ReadOnlyError`.
    """

    def __init__(
        self,
        target: Target = None,
        *,
        async_engine: AsyncEngine | None = None,
        event_limit: int | None = None,
        read_only: bool = False,
        table_prefix: str = DEFAULT_PREFIX,
        schema: str | None = None,
        engine_options: EngineOptions | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if read_only and (target is None or isinstance(target, (str, URL))):
            target = read_only_url(engines.resolve(target))
        super().__init__(
            target, async_engine=async_engine, table_prefix=table_prefix, schema=schema, engine_options=engine_options
        )
        self.event_limit = None if event_limit is None else count_arg(event_limit, "event_limit", minimum=1)
        self.read_only = bool(read_only)
        self._clock = clock

    @classmethod
    def from_conn_string(cls, url: str | URL | None = None, **kwargs: Any) -> SessionStore:
        """A store that owns its engines; use it as ``with`` or ``async with``."""
        return cls(url, **kwargs)

    # --- plumbing -------------------------------------------------------------------------

    def _call(
        self, op: Any, args: tuple[Any, ...], finish: Any = same, *, intent: Intent = Intent.READ
    ) -> Call[Any, Any]:
        sql = read_only_sql(self.db.family)
        if self.read_only and sql is not None:
            return Call(_read_only, (sql, op, *args), finish)
        return Call(op, args, finish, intent=intent)

    def _writable(self, method: str) -> None:
        if self.read_only:
            raise ReadOnlyError(
                f"{method}: this SessionStore was opened with read_only=True, for inspection; it never creates, "
                "migrates or writes. Open it without read_only to change the database."
            )

    def _setup(self) -> Call[Any, None]:
        self._writable("setup")
        return super()._setup()

    # --- sessions -------------------------------------------------------------------------

    def create_session(
        self, *, app_name: str, user_id: str, state: dict[str, Any] | None = None, session_id: str | None = None
    ) -> Session:
        """Create a session (a new random id unless `session_id` is given). `state` keys
        prefixed ``app:`` / ``user:`` go to the shared scopes, ``temp:`` keys are
        dropped. Raises `SessionExistsError` for an existing id; rejects empty ids and
        non-JSON state."""
        return self._run(self._create(app_name, user_id, state, session_id))

    async def acreate_session(
        self, *, app_name: str, user_id: str, state: dict[str, Any] | None = None, session_id: str | None = None
    ) -> Session:
        return await self._arun(self._create(app_name, user_id, state, session_id))

    def _create(self, app_name: str, user_id: str, state: Any, session_id: str | None) -> Call[Session, Session]:
        self._writable("create_session")
        keys = _keys(app_name, user_id, uuid.uuid4().hex if session_id is None else session_id)
        scoped = split_state(state, "create_session: state")
        args = (self.tables, self.db.family, keys, scoped, self._clock())
        return self._call(session_ops.create_session, args, intent=Intent.WRITE)

    def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        last_n: int | None = None,
        after: datetime | None = None,
    ) -> Session | None:
        """The session with its merged state and events (only those at or after `after`,
        and of them the last `last_n`, if given), or None if it does not exist.
        Rejects a negative `last_n` and an `after` that is not a datetime."""
        return self._run(self._get(app_name, user_id, session_id, last_n, after))

    async def aget_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        last_n: int | None = None,
        after: datetime | None = None,
    ) -> Session | None:
        return await self._arun(self._get(app_name, user_id, session_id, last_n, after))

    def _get(
        self, app_name: str, user_id: str, session_id: str, last_n: int | None, after: datetime | None
    ) -> Call[Session | None, Session | None]:
        query = EventQuery(
            since=None if after is None else time_arg(after, "after"),
            last_n=None if last_n is None else count_arg(last_n, "last_n"),
        )
        return self._call(session_ops.get_session, (self.tables, _keys(app_name, user_id, session_id), query))

    def list_sessions(self, *, app_name: str, user_id: str | None = None) -> list[Session]:
        """The app's sessions (of one user, if given), most recently updated first,
        with their state but without events."""
        return self._run(self._list(app_name, user_id))

    async def alist_sessions(self, *, app_name: str, user_id: str | None = None) -> list[Session]:
        return await self._arun(self._list(app_name, user_id))

    def _list(self, app_name: str, user_id: str | None) -> Call[list[Session], list[Session]]:
        app = text_arg(app_name, "app_name")
        user_key = None if user_id is None else key_of_parts(app, text_arg(user_id, "user_id"))
        return self._call(session_ops.list_sessions, (self.tables, key_of_parts(app), user_key))

    def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> bool:
        """Delete a session with its events, summaries and usage; whether it existed."""
        return self._run(self._delete(app_name, user_id, session_id))

    async def adelete_session(self, *, app_name: str, user_id: str, session_id: str) -> bool:
        return await self._arun(self._delete(app_name, user_id, session_id))

    def _delete(self, app_name: str, user_id: str, session_id: str) -> Call[bool, bool]:
        self._writable("delete_session")
        keys = _keys(app_name, user_id, session_id)
        return self._call(session_ops.delete_session, (self.tables, keys.session_key), intent=Intent.WRITE)

    # --- events ---------------------------------------------------------------------------

    def append_event(self, session: Session, event: SessionEvent) -> SessionEvent:
        """Append `event` after the last event `session` knows and return it as stored
        (with `seq` and `timestamp`); `session` is updated in place (event, state,
        last_seq). Its state delta is routed by scope; ``temp:`` keys are dropped.

        Raises `SessionConflictError` if another writer appended since `session` was
        read (re-read it and append again), `SessionNotFoundError` if it was deleted;
        nothing is stored then.
        """
        call, stored = self._append(session, event)
        self._finish_append(session, stored, self._run(call))
        return stored

    async def aappend_event(self, session: Session, event: SessionEvent) -> SessionEvent:
        call, stored = self._append(session, event)
        self._finish_append(session, stored, await self._arun(call))
        return stored

    def _append(self, session: Session, event: SessionEvent) -> tuple[Call[Any, Any], SessionEvent]:
        self._writable("append_event")
        if not isinstance(session, Session):
            raise InvalidArgumentError(f"append_event: session must be a Session, not {type(session).__name__}")
        check_event(event)
        scoped = split_state(event.state_delta, "event state_delta")
        stored = SessionEvent(
            author=event.author,
            content=event.content,
            type=event.type,
            turn_id=event.turn_id,
            state_delta=scoped.stored_delta(),
            id=event.id,
            timestamp=None if event.timestamp is None else time_arg(event.timestamp, "event timestamp"),
        )
        args = (
            self.tables,
            self.db.family,
            _keys(session.app_name, session.user_id, session.id),
            session.last_seq,
            stored,
            scoped,
            self.event_limit,
            self._clock(),
        )
        return self._call(session_ops.append_event, args, intent=Intent.WRITE), stored

    def _finish_append(self, session: Session, stored: SessionEvent, result: tuple[int, datetime]) -> None:
        stored.seq, stored.timestamp = result
        session.events.append(stored)
        session.state.update(stored.state_delta)
        session.last_seq = stored.seq
        if self.event_limit is not None:
            del session.events[: -self.event_limit]

    def query_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        types: Sequence[str] | None = None,
        turn_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[SessionEvent]:
        """A session's events in order, filtered by type, turn, time range
        (``since <= timestamp < until``) and sequence number, at most `limit` (the
        first ones). Raises `SessionNotFoundError` for a missing session; rejects
        `types` given as one string, negative limits and non-datetime bounds."""
        query = self._query(types, turn_id, since, until, after_seq, limit)
        return self._run(self._events(app_name, user_id, session_id, query))

    async def aquery_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        types: Sequence[str] | None = None,
        turn_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[SessionEvent]:
        query = self._query(types, turn_id, since, until, after_seq, limit)
        return await self._arun(self._events(app_name, user_id, session_id, query))

    def history(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Turn]:
        """The session's events grouped by turn, turns in the order they began."""
        query = self._query(types, None, since, until, None, None)
        events: list[SessionEvent] = self._run(self._events(app_name, user_id, session_id, query))
        return transcript.group_by_turn(events)

    async def ahistory(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Turn]:
        query = self._query(types, None, since, until, None, None)
        events: list[SessionEvent] = await self._arun(self._events(app_name, user_id, session_id, query))
        return transcript.group_by_turn(events)

    @staticmethod
    def _query(
        types: Sequence[str] | None,
        turn_id: str | None,
        since: datetime | None,
        until: datetime | None,
        after_seq: int | None,
        limit: int | None,
    ) -> EventQuery:
        if types is not None and (isinstance(types, str) or not all(isinstance(t, str) for t in types)):
            raise InvalidArgumentError(f"types must be a list of event types, not {types!r:.60}")
        return EventQuery(
            types=None if types is None else tuple(types),
            turn_key=None if turn_id is None else key_of(text_arg(turn_id, "turn_id")),
            since=None if since is None else time_arg(since, "since"),
            until=None if until is None else time_arg(until, "until"),
            after_seq=None if after_seq is None else count_arg(after_seq, "after_seq"),
            limit=None if limit is None else count_arg(limit, "limit"),
        )

    def _events(
        self, app_name: str, user_id: str, session_id: str, query: EventQuery
    ) -> Call[list[SessionEvent], list[SessionEvent]]:
        return self._call(session_ops.query_events, (self.tables, _keys(app_name, user_id, session_id), query))

    # --- usage, summaries, transcripts ------------------------------------------------------

    def record_usage(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        turn_id: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        model: str | None = None,
    ) -> TurnUsage:
        """Add a turn's token usage; a second record for the same turn merges into the
        first (counts added, latest model kept). Returns the merged usage. Rejects
        negative token counts; raises `SessionNotFoundError` for a missing session."""
        return self._run(self._record(app_name, user_id, session_id, turn_id, input_tokens, output_tokens, model))

    async def arecord_usage(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        turn_id: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        model: str | None = None,
    ) -> TurnUsage:
        call = self._record(app_name, user_id, session_id, turn_id, input_tokens, output_tokens, model)
        return await self._arun(call)

    def _record(
        self,
        app_name: str,
        user_id: str,
        session_id: str,
        turn_id: str,
        input_tokens: int,
        output_tokens: int,
        model: str | None,
    ) -> Call[TurnUsage, TurnUsage]:
        self._writable("record_usage")
        keys = _keys(app_name, user_id, session_id)
        now = self._clock()
        row = {
            "session_key": keys.session_key,
            "turn_key": key_of(text_arg(turn_id, "turn_id")),
            "turn_id": turn_id,
            "model": None if model is None else text_arg(model, "model"),
            "input_tokens": count_arg(input_tokens, "input_tokens"),
            "output_tokens": count_arg(output_tokens, "output_tokens"),
            "records": 1,
            "created_at": now,
            "updated_at": now,
        }
        return self._call(session_ops.record_usage, (self.tables, self.db.family, keys, row), intent=Intent.WRITE)

    def usage(self, *, app_name: str, user_id: str, session_id: str) -> list[TurnUsage]:
        """Token usage per turn, in the order turns were first recorded."""
        return self._run(self._usage(app_name, user_id, session_id))

    async def ausage(self, *, app_name: str, user_id: str, session_id: str) -> list[TurnUsage]:
        return await self._arun(self._usage(app_name, user_id, session_id))

    def _usage(self, app_name: str, user_id: str, session_id: str) -> Call[list[TurnUsage], list[TurnUsage]]:
        return self._call(session_ops.list_usage, (self.tables, _keys(app_name, user_id, session_id)))

    def put_summary(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        summary: str,
        filter_key: str = "",
        topics: Sequence[str] = (),
    ) -> SessionSummary:
        """Store the summary of a session, or of the part of it `filter_key` names
        ("" = the whole session), replacing the previous one for that key. Rejects
        topics that are not a list of strings; raises `SessionNotFoundError`."""
        return self._run(self._put_summary(app_name, user_id, session_id, summary, filter_key, topics))

    async def aput_summary(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        summary: str,
        filter_key: str = "",
        topics: Sequence[str] = (),
    ) -> SessionSummary:
        return await self._arun(self._put_summary(app_name, user_id, session_id, summary, filter_key, topics))

    def _put_summary(
        self, app_name: str, user_id: str, session_id: str, summary: str, filter_key: str, topics: Sequence[str]
    ) -> Call[SessionSummary, SessionSummary]:
        self._writable("put_summary")
        keys = _keys(app_name, user_id, session_id)
        if isinstance(topics, str) or not isinstance(topics, Sequence):
            raise InvalidArgumentError(f"topics must be a list of strings, not {topics!r:.60}")
        row = {
            "session_key": keys.session_key,
            "filter_hash": key_of(text_arg(filter_key, "filter_key", allow_empty=True)),
            "filter_key": filter_key,
            "summary": text_arg(summary, "summary", allow_empty=True),
            "topics": json_value([text_arg(t, "topic") for t in topics], "topics"),
            "updated_at": self._clock(),
        }
        return self._call(session_ops.put_summary, (self.tables, self.db.family, keys, row), intent=Intent.WRITE)

    def get_summary(
        self, *, app_name: str, user_id: str, session_id: str, filter_key: str = ""
    ) -> SessionSummary | None:
        """The summary stored for `filter_key`, or None."""
        return self._run(self._get_summary(app_name, user_id, session_id, filter_key))

    async def aget_summary(
        self, *, app_name: str, user_id: str, session_id: str, filter_key: str = ""
    ) -> SessionSummary | None:
        return await self._arun(self._get_summary(app_name, user_id, session_id, filter_key))

    def _get_summary(
        self, app_name: str, user_id: str, session_id: str, filter_key: str
    ) -> Call[SessionSummary | None, SessionSummary | None]:
        keys = _keys(app_name, user_id, session_id)
        key = text_arg(filter_key, "filter_key", allow_empty=True)
        return self._call(session_ops.get_summary, (self.tables, keys, key))

    def export_markdown(self, *, app_name: str, user_id: str, session_id: str) -> str:
        """The session as a Markdown transcript: summaries, then turns with their events
        and token usage. Raises `SessionNotFoundError` for a missing session."""
        return self._run(self._transcript(app_name, user_id, session_id))

    async def aexport_markdown(self, *, app_name: str, user_id: str, session_id: str) -> str:
        return await self._arun(self._transcript(app_name, user_id, session_id))

    def _transcript(self, app_name: str, user_id: str, session_id: str) -> Call[Any, str]:
        keys = _keys(app_name, user_id, session_id)
        return self._call(session_ops.transcript, (self.tables, keys), lambda parts: transcript.markdown(*parts))

    # --- retention --------------------------------------------------------------------------

    def purge_older_than(self, cutoff: datetime) -> PurgeResult:
        """Delete the sessions not updated since `cutoff`, with their events, summaries
        and usage; how many sessions and events went. App and user state stay."""
        return self._run(self._purge(cutoff))

    async def apurge_older_than(self, cutoff: datetime) -> PurgeResult:
        return await self._arun(self._purge(cutoff))

    def _purge(self, cutoff: datetime) -> Call[PurgeResult, PurgeResult]:
        self._writable("purge_older_than")
        return self._call(session_ops.purge, (self.tables, time_arg(cutoff, "cutoff")), intent=Intent.WRITE)
