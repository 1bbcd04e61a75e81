"""LangGraph's conformance suite, both APIs, through PgBouncer in transaction mode and
through a Galera cluster: the runner of `tests/saver/test_conformance.py`, on those URLs."""

from __future__ import annotations

import pytest

from tests.saver.test_conformance import test_conformance_suite_passes_every_capability

__all__ = ["test_conformance_suite_passes_every_capability"]


@pytest.fixture
def engine_name(scenario: str) -> str:
    return scenario


@pytest.fixture
def db_url(scenario_url: str) -> str:
    return scenario_url
