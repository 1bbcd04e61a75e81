"""Companion stores on the saver's database: `SQLStore` (LangGraph's long-term memory).
Each works alone from a URL or engines, or on a shared `Database`."""

from checkpoint_sql.stores.memories import MemoryEntry
from checkpoint_sql.stores.store import SQLStore

__all__ = ["MemoryEntry", "SQLStore"]
