"""The graph scenarios of `tests/saver/test_graphs.py` (resume in a new saver, interrupts,
replay, forks, subgraphs, durability modes, encryption, delta channels), both APIs,
through PgBouncer in transaction mode and through a Galera cluster."""

from __future__ import annotations

import pytest

from tests.saver.test_graphs import (
    api,
    test_a_run_that_crashed_resumes_in_a_new_saver_instance,
    test_a_subgraph_keeps_its_checkpoints_in_its_namespace_and_resumes,
    test_an_interrupted_run_resumes_with_command_in_a_new_saver_instance,
    test_delta_channel_is_rebuilt_from_history_after_prune_and_copy,
    test_encrypted_serializer_stores_ciphertext_and_round_trips,
    test_every_durability_mode_stores_what_in_memory_saver_stores,
    test_history_matches_in_memory_saver_step_for_step,
    test_replaying_an_earlier_checkpoint_reexecutes_from_there,
    test_update_state_forks_a_branch_visible_in_history,
)

__all__ = [
    "api",
    "test_a_run_that_crashed_resumes_in_a_new_saver_instance",
    "test_a_subgraph_keeps_its_checkpoints_in_its_namespace_and_resumes",
    "test_an_interrupted_run_resumes_with_command_in_a_new_saver_instance",
    "test_delta_channel_is_rebuilt_from_history_after_prune_and_copy",
    "test_encrypted_serializer_stores_ciphertext_and_round_trips",
    "test_every_durability_mode_stores_what_in_memory_saver_stores",
    "test_history_matches_in_memory_saver_step_for_step",
    "test_replaying_an_earlier_checkpoint_reexecutes_from_there",
    "test_update_state_forks_a_branch_visible_in_history",
]

pytestmark = pytest.mark.parametrize("api", ["sync", "async"], indirect=True)


@pytest.fixture
def db_url(scenario_url: str) -> str:
    return scenario_url
