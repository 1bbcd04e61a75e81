"""The main job from the README: `python -m checkpoint_sql demo`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from checkpoint_sql import SQLSaver


def test_the_demo_pauses_resumes_replays_forks_and_shows_the_lineage(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "COLUMNS": "120"}
    env.pop("CHECKPOINT_SQL_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "checkpoint_sql", "demo", "--thread", "trip-test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in (
        "paused: 'May I look up the weather in Paris?'",
        "restored state: next=('approve',)",
        "Pack for: Paris: 14°C, light rain; Tokyo: 22°C, clear",
        "Replay from checkpoint",
        "Pack for: Oslo: 3°C, snow",
        "thread trip-test: 17 checkpoints",
        "branch 2",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"

    database = tmp_path / "checkpoint_sql" / "checkpoints.db"
    assert database.exists(), "the demo uses the embedded default database"
    with SQLSaver(f"sqlite:///{database}") as saver:
        history = list(saver.list({"configurable": {"thread_id": "trip-test", "checkpoint_ns": ""}}))
    assert len(history) == 17
    assert {t.metadata["source"] for t in history} == {"input", "loop", "update", "fork"}
