"""Shared by the companion-store tests: a deterministic embedding, a clock the tests
move by hand, and a snapshot of every companion table for "nothing changed" checks."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from checkpoint_sql.stores.component import Component

VOCABULARY = ("python", "java", "cat", "dog", "pizza", "pasta", "rain", "sun")


def embed(texts: list[str]) -> list[list[float]]:
    """One dimension per vocabulary word, counting its occurrences: documents about the
    same words point the same way, so rankings are predictable."""
    return [[float(re.findall(r"[a-z]+", text.lower()).count(word)) for word in VOCABULARY] for text in texts]


async def aembed(texts: list[str]) -> list[list[float]]:
    return embed(texts)


INDEX: dict[str, Any] = {"dims": len(VOCABULARY), "embed": embed, "fields": ["text"]}


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def snapshot(component: Component) -> dict[str, list[str]]:
    """Every row of every companion table, sorted: equal snapshots mean nothing changed."""
    tables = component.tables
    with component.db.sync_engine.connect() as conn:
        return {
            table.name: sorted(repr(tuple(row)) for row in conn.execute(sa.select(table)))
            for table in tables.metadata.sorted_tables
        }
