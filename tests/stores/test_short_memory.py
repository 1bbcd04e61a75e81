"""`ShortMemoryStore` on every engine: JSON values by (type, key) that expire."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from checkpoint_sql import ShortMemoryStore
from tests.store_helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def memory(db_url: str, clock: Clock) -> Iterator[ShortMemoryStore]:
    with ShortMemoryStore.from_conn_string(db_url, clock=clock) as m:
        m.setup()
        yield m


VALUES = [{"a": [1, 2.5, None], "b": {"c": "é"}}, [1, "two"], "text", 42, 0.5, True, None]


def test_values_round_trip_and_expire(memory: ShortMemoryStore, clock: Clock) -> None:
    for n, value in enumerate(VALUES):
        memory.set("ledger", f"k{n}", value, ttl=60)
    memory.set("cooldown", "k0", "other type", ttl=timedelta(seconds=10))
    assert [memory.get("ledger", f"k{n}") for n in range(len(VALUES))] == VALUES
    assert memory.get("ledger", "missing", default="fallback") == "fallback"
    assert memory.get("ledger", f"k{len(VALUES) - 1}", default="fallback") is None, "a stored null is a value"
    assert (memory.count("ledger"), memory.count("cooldown"), memory.count("none")) == (len(VALUES), 1, 0)
    clock.advance(seconds=30)
    assert memory.get("cooldown", "k0") is None and memory.count("cooldown") == 0
    memory.set("ledger", "k0", "renewed", ttl=60)  # overwriting restarts the TTL
    clock.advance(seconds=45)
    assert memory.get("ledger", "k0") == "renewed" and memory.get("ledger", "k1") is None
    assert memory.count("ledger") == 1
    assert memory.cleanup() == len(VALUES) - 1 + 1
    assert memory.cleanup() == 0
    assert memory.delete("ledger", "k0") is True and memory.delete("ledger", "k0") is False


async def test_async_twins(memory: ShortMemoryStore, clock: Clock) -> None:
    await memory.aset("t", "k", {"x": 1}, ttl=5)
    assert await memory.aget("t", "k") == {"x": 1}
    assert await memory.acount("t") == 1
    clock.advance(seconds=6)
    assert await memory.aget("t", "k", default=0) == 0
    assert await memory.acleanup() == 1
    assert await memory.adelete("t", "k") is False
