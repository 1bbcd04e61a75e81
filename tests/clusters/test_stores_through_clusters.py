"""The companion stores through PgBouncer in transaction mode and through a Galera
cluster: `SQLStore` against LangGraph's `InMemoryStore` (`tests/stores/test_store_contract.py`)
and the `SessionStore` scenarios with concurrent writers, conflicts and read-only mode
(`tests/stores/test_sessions.py`)."""

from __future__ import annotations

import pytest

from tests.stores.test_sessions import (
    clock,
    sessions,
    test_a_stale_writer_gets_a_conflict_and_stores_nothing,
    test_async_twins_cover_the_whole_api,
    test_read_only_mode_reads_and_refuses_every_write,
    test_two_async_tasks_appending_to_one_session_lose_and_reorder_nothing,
    test_two_threads_appending_to_one_session_lose_and_reorder_nothing,
)
from tests.stores.test_store_contract import (
    driver,
    stores,
    test_convenience_methods_match_the_reference,
    test_get_returns_what_was_put,
    test_list_namespaces_matches_the_reference,
    test_overwrite_delete_and_reads_before_writes_in_one_batch,
    test_search_by_prefix_and_filter_matches_the_reference,
    test_search_pages_cover_the_same_items,
)

__all__ = [
    "clock",
    "driver",
    "sessions",
    "stores",
    "test_a_stale_writer_gets_a_conflict_and_stores_nothing",
    "test_async_twins_cover_the_whole_api",
    "test_convenience_methods_match_the_reference",
    "test_get_returns_what_was_put",
    "test_list_namespaces_matches_the_reference",
    "test_overwrite_delete_and_reads_before_writes_in_one_batch",
    "test_read_only_mode_reads_and_refuses_every_write",
    "test_search_by_prefix_and_filter_matches_the_reference",
    "test_search_pages_cover_the_same_items",
    "test_two_async_tasks_appending_to_one_session_lose_and_reorder_nothing",
    "test_two_threads_appending_to_one_session_lose_and_reorder_nothing",
]


@pytest.fixture
def db_url(scenario_url: str) -> str:
    return scenario_url
