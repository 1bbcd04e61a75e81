"""Load the cluster tests put on a database: several processes calling `setup()` at
once, and bounded batches of concurrent graph runs (in this process, or in processes of
their own: ``python -m tests.clusters.load URL PREFIX RUNS``) whose outcome is compared
with the same run on `InMemorySaver` (`tests.retry.test_faults.reference`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from checkpoint_sql import RetryingSaver, RetryPolicy, SQLSaver, SQLStore
from checkpoint_sql.core import migrate
from tests.graphs import agent_graph, question
from tests.retry.test_faults import QUESTION, Outcome, run_to_end

PATIENT = RetryPolicy(max_retries=40, base_delay=0.05, max_delay=0.5, jitter=0.05)
"""Patient enough to outlast a failover or a node rejoining (about 20 s), quick to retry."""

_SETUP = """
import sys
from checkpoint_sql import SQLSaver, SQLStore, SessionStore, ShortMemoryStore
for kind in (SQLSaver, SQLStore, SessionStore, ShortMemoryStore):
    with kind.from_conn_string(sys.argv[1]) as component:
        component.setup()
print("set up")
"""


def set_up_in_processes(urls: Sequence[str]) -> list[str]:
    """Start one process per URL, each setting up the saver and every store, all at
    once; returns what each printed: "set up", or the whole traceback of its error."""
    command = [sys.executable, "-c", _SETUP]
    processes = [
        subprocess.Popen([*command, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for url in urls
    ]
    outputs = [p.communicate(timeout=180)[0].strip() for p in processes]
    return ["set up" if out.splitlines()[-1:] == ["set up"] else out for out in outputs]


def components_at_head(url: str) -> bool:
    """Whether the saver and the stores (one revision history for the three) are at
    their newest schema revision."""
    for kind in (SQLSaver, SQLStore):
        with kind.from_conn_string(url) as component:
            target = component.tables.migrations
            if component.db.run(migrate.current, target) != migrate.head(target):
                return False
    return True


class RetryLog(logging.Handler):
    """Counts the retries `RetryPolicy` logs and keeps the errors they name."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.retries = 0
        self.errors: set[str] = set()
        self._count = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._count:
            self.retries += 1
            error = str(record.args[3]) if isinstance(record.args, tuple) and len(record.args) > 3 else record.msg
            self.errors.add(str(error)[:120])

    def __enter__(self) -> RetryLog:
        logging.getLogger("checkpoint_sql.retry.policy").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("checkpoint_sql.retry.policy").removeHandler(self)


def run_threads(saver: Any, thread_ids: Sequence[str], *, workers: int, tools: Any = None) -> dict[str, Outcome]:
    """Run each thread to its end with the sync API, `workers` at a time."""
    graph = agent_graph(tools).compile(checkpointer=saver)

    def one(thread_id: str) -> Outcome:
        return asyncio.run(run_to_end("sync", graph, thread_id, question(QUESTION)))

    with ThreadPoolExecutor(workers) as pool:
        return dict(zip(thread_ids, pool.map(one, thread_ids), strict=True))


async def arun_threads(saver: Any, thread_ids: Sequence[str], *, tools: Any = None) -> dict[str, Outcome]:
    """Run every thread to its end at once with the async API."""
    graph = agent_graph(tools).compile(checkpointer=saver)
    outcomes = await asyncio.gather(*(run_to_end("async", graph, t, question(QUESTION)) for t in thread_ids))
    return dict(zip(thread_ids, outcomes, strict=True))


def start_runner(url: str, prefix: str, runs: int) -> subprocess.Popen[str]:
    """A process of its own running `runs` threads (``{prefix}-{n}``) to their end through
    `url` with a patient `RetryingSaver`, four at a time; it prints one JSON line: each
    thread's outcome (as text, to compare with `reference()`), the retries, the errors."""
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.clusters.load", url, prefix, str(runs)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def runner_result(process: subprocess.Popen[str], timeout: float = 240) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise AssertionError(f"runner failed ({process.returncode}):\n{err[-3000:]}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def _main(url: str, prefix: str, runs: int) -> None:
    threads = [f"{prefix}-{n}" for n in range(runs)]
    with RetryLog() as retries, RetryingSaver.from_conn_string(url, policy=PATIENT) as saver:
        saver.setup()
        outcomes = run_threads(saver, threads, workers=4)
    print(
        json.dumps(
            {
                "outcomes": {t: repr(o) for t, o in outcomes.items()},
                "retries": retries.retries,
                "errors": sorted(retries.errors),
            }
        )
    )


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
