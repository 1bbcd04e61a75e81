"""Profiles of our saver's operations (``--profile``): pyinstrument, in the calling thread,
on the per-operation workload run directly (LangGraph runs puts in background threads,
which an in-thread profiler of a graph run would not see).

Each profile is `profile_calls` calls of one operation, on the sync API (and, for put,
put_writes and get_tuple, on the async API too, with pyinstrument's async mode: time
spent awaiting the driver's thread or socket shows as ``await`` frames). The text
output (library frames collapsed) and an HTML view are saved under ``<out>/profiles/``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

from benchmarks.contenders import Kit
from benchmarks.fixtures import checkpoint_ids, fresh_put, load, thread_config
from benchmarks.graph import Recorded
from benchmarks.runner import Loop
from benchmarks.settings import Settings

OPS = (
    "put",
    "put_writes",
    "get_tuple (latest)",
    "list (limit=10)",
    "list (whole thread)",
    "delete_thread",
    "copy_thread",
)


def _calls(kit: Kit, recorded: Recorded, op: str, n: int, *, api: str = "sync") -> Callable[[int], Any]:
    """Call i of `n` calls of `op` on the sync API (or, for the `ASYNC_OPS`, a coroutine
    on the async one), with the fixtures of all of them made now."""
    s = kit.ours
    method = "a" if api == "async" else ""
    if api == "async" and op not in ASYNC_OPS:
        raise ValueError(f"no async profile of {op}")
    put_template = recorded.puts[len(recorded.puts) // 2]
    conversation = f"prof-{method}conv-{uuid.uuid4().hex[:8]}"
    load(s, recorded, conversation)
    if op == "put":
        puts = [fresh_put(put_template, f"prof-{method}put-{uuid.uuid4().hex[:8]}") for _ in range(n)]
        put = getattr(s, method + "put")
        return lambda i: put(*puts[i])
    if op == "put_writes":
        _, writes, _, path = recorded.writes[len(recorded.writes) // 2]
        config = thread_config(conversation, checkpoint_ids(recorded)[-1])
        tasks = [str(uuid.uuid4()) for _ in range(n)]
        put_writes = getattr(s, method + "put_writes")
        return lambda i: put_writes(config, writes, tasks[i], path)
    if op == "get_tuple (latest)":
        get_tuple = getattr(s, method + "get_tuple")
        return lambda _: get_tuple(thread_config(conversation))
    if op == "list (limit=10)":
        return lambda _: list(s.list(thread_config(conversation), limit=10))
    if op == "list (whole thread)":
        return lambda _: list(s.list(thread_config(conversation, ns=None)))
    if op == "delete_thread":
        threads = [f"prof-del-{uuid.uuid4().hex[:8]}" for _ in range(n)]
        for t in threads:
            s.copy_thread(conversation, t)
        return lambda i: s.delete_thread(threads[i])
    if op == "copy_thread":
        targets = [f"prof-copy-{uuid.uuid4().hex[:8]}" for _ in range(n)]
        return lambda i: s.copy_thread(conversation, targets[i])
    raise ValueError(op)


ASYNC_OPS = ("put", "put_writes", "get_tuple (latest)")


def _file_name(engine: str, op: str, api: str) -> str:
    name = op.replace(" ", "_").replace("(", "").replace(")", "").replace("=", "")
    return f"{engine}-{name}" + ("-async" if api == "async" else "")


def run(kits: list[Kit], recorded: Recorded, settings: Settings, out: Path, loop: Loop) -> dict[str, str]:
    """Profile every operation on every engine (and a few through the async API);
    returns {"engine/op[/async]": text}."""
    folder = out / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {}
    n = settings.profile_calls
    for kit in kits:
        for op in ASYNC_OPS:
            awarm, acall = _calls(kit, recorded, op, 3, api="async"), _calls(kit, recorded, op, n, api="async")

            async def profiled(warm: Any = awarm, call: Any = acall) -> Profiler:
                for i in range(3):
                    await warm(i)
                profiler = Profiler(interval=0.0002, async_mode="enabled")
                profiler.start()
                for i in range(n):
                    await call(i)
                profiler.stop()
                return profiler

            profiler = loop.run(profiled())
            text = profiler.output_text(unicode=True, color=False, show_all=False)
            name = _file_name(kit.engine, op, "async")
            (folder / f"{name}.txt").write_text(text)
            texts[f"{kit.engine}/{op}/async"] = text
        for op in OPS:
            warm = _calls(kit, recorded, op, 3)
            for i in range(3):
                warm(i)
            call = _calls(kit, recorded, op, n)
            profiler = Profiler(interval=0.0002)
            profiler.start()
            for i in range(n):
                call(i)
            profiler.stop()
            text = profiler.output_text(unicode=True, color=False, show_all=False)
            name = _file_name(kit.engine, op, "sync")
            (folder / f"{name}.txt").write_text(text)
            (folder / f"{name}.html").write_text(profiler.output_html())
            texts[f"{kit.engine}/{op}"] = text
    return texts


def top(text: str, lines: int = 40) -> str:
    """The first `lines` lines of a profile's call tree."""
    return "\n".join(text.splitlines()[:lines])
