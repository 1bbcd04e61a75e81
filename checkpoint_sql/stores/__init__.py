"""Companion stores on the saver's database: `SQLStore` (LangGraph's long-term memory),
`SessionStore` (sessions, events, scoped state) and `ShortMemoryStore` (short-lived
key-value entries). Each works alone from a URL or engines, or on a shared `Database`."""

from checkpoint_sql.stores.memories import MemoryEntry
from checkpoint_sql.stores.session_models import (
    PurgeResult,
    Session,
    SessionEvent,
    SessionSummary,
    Turn,
    TurnUsage,
)
from checkpoint_sql.stores.sessions import SessionStore
from checkpoint_sql.stores.short_memory import ShortMemoryStore
from checkpoint_sql.stores.store import SQLStore

__all__ = [
    "MemoryEntry",
    "PurgeResult",
    "SQLStore",
    "Session",
    "SessionEvent",
    "SessionStore",
    "SessionSummary",
    "ShortMemoryStore",
    "Turn",
    "TurnUsage",
]
