"""The benchmark suite (``python -m benchmarks``) still runs: its smoke mode, tiny sizes and
one repetition, on every reachable engine. Timings are never asserted here (they mean
nothing at these sizes, on a shared machine); only that every workload ran, counted
statements, and wrote its JSON and chart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENGINES, REQUIRED, _unreachable

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {"agent_loop", "operations", "history", "storage", "concurrency"}


def test_smoke_run_writes_every_workload(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the suite's chart needs the bench extra: pip install -e '.[bench]'")
    pytest.importorskip("pyinstrument", reason="profiles need the bench extra: pip install -e '.[bench]'")
    engines = []
    for engine in ENGINES:
        reason = _unreachable(engine)
        if reason is None:
            engines.append(engine)
        elif engine in REQUIRED:
            pytest.fail(f"{reason} (CHECKPOINT_SQL_REQUIRE_ENGINES requires it)")
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "benchmarks",
        "--smoke",
        "--profile",
        "--quiet",
        "--engines",
        ",".join(engines),
        "--out",
        str(out),
        "--workdir",
        str(tmp_path / "work"),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"

    data = json.loads((out / "results.json").read_text())
    assert set(data["workloads"]) == WORKLOADS
    assert data["meta"]["engines"] == engines
    assert (out / "chart.png").stat().st_size > 0
    operations = data["workloads"]["operations"]["engines"]
    for engine in engines:
        counted = operations[engine]["counted"]
        # the floor replays the statements our saver ran on its cursors: on the hot path
        # that is all of them; elsewhere the driver may add a connection-level ROLLBACK
        for op in ("put", "put_writes", "get_tuple (latest)", "list (limit=10)"):
            assert counted[f"floor/{op}"]["statements"] == counted[f"ours/{op}"]["statements"] >= 1
        for op in ("delete_thread", "copy_thread"):
            assert 1 <= counted[f"floor/{op}"]["statements"] <= counted[f"ours/{op}"]["statements"]
        assert counted["ours/put"]["commits"] == 1
        assert (out / "profiles" / f"{engine}-put.txt").exists()
    if "sqlite" in engines:
        levels = {row["saver"]: row["synchronous"] for row in data["meta"]["durability"]}
        assert set(levels.values()) == {"FULL"}, levels
    assert all(t["measured"] is None or t["measured"] >= 0 for t in data["targets"])
