"""LangGraph's own conformance suite, every capability, on every engine, both APIs.

The suite only calls async methods. To hold the sync API to the same contract, a
thin adapter answers those async calls with `SQLSaver`'s sync methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from checkpoint_sql import SQLSaver


class SyncAPI(BaseCheckpointSaver[str]):
    """Exposes `saver`'s sync methods under the async names the suite calls."""

    def __init__(self, saver: SQLSaver) -> None:
        super().__init__(serde=saver.serde)
        self.saver = saver

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.saver.get_tuple(config)

    async def alist(self, config: RunnableConfig | None, **kwargs: Any) -> AsyncIterator[CheckpointTuple]:  # type: ignore[override]
        for item in self.saver.list(config, **kwargs):
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Any, metadata: Any, new_versions: Any) -> RunnableConfig:
        return self.saver.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.saver.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.saver.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.saver.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.saver.copy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.saver.prune(thread_ids, strategy=strategy)

    def get_next_version(self, current: Any, channel: None) -> str:
        return self.saver.get_next_version(current, channel)


@pytest.mark.parametrize("api", ["async", "sync"])
async def test_conformance_suite_passes_every_capability(db_url: str, engine_name: str, api: str) -> None:
    @checkpointer_test(name=f"SQLSaver[{engine_name}, {api}]")
    async def factory() -> AsyncIterator[BaseCheckpointSaver[str]]:
        async with SQLSaver.from_conn_string(db_url) as saver:
            await saver.asetup()
            yield saver if api == "async" else SyncAPI(saver)

    failures: list[str] = []

    def record(capability: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{capability}.{test}:\n{error}")

    report = await validate(factory, progress=ProgressCallbacks(on_test_result=record))

    detected = {name for name, result in report.results.items() if result.detected}
    assert detected == {c.value for c in ALL_CAPABILITIES}, (
        f"capabilities not detected: {set(report.results) - detected}"
    )
    assert not failures, "\n\n".join(failures)
    passed = sum(r.tests_passed for r in report.results.values())
    assert passed >= 80, f"only {passed} conformance tests ran"
    print(f"\nconformance {engine_name}/{api}: {passed} passed, 0 failed, {len(detected)}/8 capabilities")
