"""The benchmark suite (``python -m benchmarks``) still runs: its smoke mode, tiny sizes and
one repetition, on every reachable engine. Timings are never asserted here (they mean
nothing at these sizes, on a shared machine); only that every workload ran, counted
statements, checked every target of issues 9 and 10, and wrote its JSON and chart. A few pure
pieces of the suite (sampling, statement counting) are checked directly.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENGINES, REQUIRED, _unreachable

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {"agent_loop", "operations", "history", "storage", "concurrency", "conversation"}
TARGET_OPS = ("put", "put_writes", "get_tuple (latest)", "get_tuple (by id)", "list (limit=10)", "list (whole thread)")


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
    _check_targets(data["targets"], engines)

    agent = data["workloads"]["agent_loop"]
    for key, contender in agent["contenders"].items():
        # wall and CPU time of the same runs, warm-up rounds dropped from both
        assert len(contender["cpu_samples"]) == len(contender["samples"]) == data["meta"]["sizes"]["agent_reps"], key
        assert all(cpu > 0 for cpu in contender["cpu_samples"]), key
    assert set(agent["cpu_overhead"]) == {f"{e}/{api}" for e in engines for api in ("sync", "async")}


LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}


def _check_targets(targets: list[dict[str, object]], engines: list[str]) -> None:
    """Exactly the targets of issues 9 and 10, on every engine and API they apply to."""
    by_workload: dict[str, list[str]] = {}
    for t in targets:
        by_workload.setdefault(str(t["workload"]), []).append(str(t["what"]))
    for engine in engines:
        label = LABELS[engine]

        def mine(workload: str, label: str = label) -> list[str]:
            return [w for w in by_workload.get(workload, []) if w.startswith(f"{label}, ")]

        assert len(mine("agent loop")) == 2 and len(mine("cost")) == 2, label  # sync and async
        operations = mine("operations")
        for op in TARGET_OPS:  # ÷ official (sync and async), ÷ (floor + serde)
            assert len([w for w in operations if f" API, {op}: SQLSaver ÷ " in w]) == 3, (label, op)
        assert not [w for w in operations if "delete_thread" in w or "copy_thread" in w]
        assert len(operations) == 3 * len(TARGET_OPS) + 1  # + commits per put
        assert len(mine("history")) == 2
        assert len(mine("concurrency")) == (1 if engine == "sqlite" else 2)
        conversation = mine("long conversation")  # bytes on disk, last turns, 3 reads, bytes written
        assert len(conversation) == 6, (label, conversation)
    assert set(by_workload) <= {"agent loop", "cost", "operations", "history", "concurrency", "long conversation"}


def test_interleave_keeps_the_figures_of_one_run_together() -> None:
    from benchmarks.runner import Case, Sample, cpus, interleave, walls

    serial = itertools.count()

    def sample() -> Sample:
        n = next(serial)
        return Sample(wall=float(n), cpu=n + 0.5)

    runs = interleave([Case("a", sample)], reps=3, warmup=2, label="test", quiet=True)
    assert walls(runs["a"]) == [2.0, 3.0, 4.0]
    assert cpus(runs["a"]) == [2.5, 3.5, 4.5]


def test_a_multi_statement_query_counts_each_statement_once() -> None:
    pytest.importorskip("psycopg")
    pytest.importorskip("pymysql")
    from benchmarks.tracing import commits_of, split_statements

    query = "START TRANSACTION; INSERT INTO t VALUES ('a;b\\';c', _binary'x;y', `odd;name`); COMMIT"
    statements = split_statements(query)
    assert statements == ["START TRANSACTION", "INSERT INTO t VALUES ('a;b\\';c', _binary'x;y', `odd;name`)", "COMMIT"]
    assert commits_of(statements) == 1
    assert split_statements("SELECT 1") == ["SELECT 1"]
