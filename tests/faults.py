"""Helpers for the retry tests: a recorder for the policy's sleeps, and the retry
warnings it logged."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest


@dataclass
class RecordedSleeps:
    """A sleep hook for tenacity that records each delay instead of sleeping."""

    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def retries_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The retry warnings a policy logged during the test."""
    return [r for r in caplog.records if r.name == "checkpoint_sql.retry" and r.levelno == logging.WARNING]
