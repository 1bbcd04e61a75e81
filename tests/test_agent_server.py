"""The LangGraph Agent Server on our tables: a real ``langgraph dev`` whose
``langgraph.json`` names `checkpoint_sql.server`'s factories, driven with
``langgraph-sdk`` the way an application would, on SQLite and PostgreSQL.

Each server runs on a private loopback port (25500-25599), offline (no analytics,
no version check, no tracing), and is stopped afterwards, also when the test fails.
Needs the ``server`` extra; skipped without it unless CHECKPOINT_SQL_REQUIRE_ENGINES
names ``agent-server``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checkpoint_sql import ConfigurationError, RetryingSaver, SQLSaver, SQLStore, server
from tests.conftest import REQUIRED, fresh_database, require
from tests.helpers import put_chain
from tests.lineages import LOG

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("langgraph")
PORTS = range(25500, 25600)
OFFLINE = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "1",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    # Anything else the server might reach for goes to a closed port: it must not need it.
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}
GRAPH = (
    "from tests.graphs import agent_graph, log_graph\n\n"
    "graph = agent_graph(approval=True).compile()\n"
    "log = log_graph().compile()  # a DeltaChannel: state is rebuilt with get_delta_channel_history\n"
)


def readme_langgraph_json() -> str:
    """The README's ``langgraph.json`` (its JSON block naming a checkpointer): the
    test deploys exactly what the documentation tells users to write."""
    blocks = re.findall(r"```json\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    documented = [b for b in blocks if '"checkpointer"' in b]
    assert len(documented) == 1, "the README shows one langgraph.json"
    return documented[0]


QUESTION = {"messages": [{"type": "human", "content": "red green", "id": "human-0"}], "tool_calls": 0}


def _require_agent_server() -> None:
    modules = ("langgraph_api", "langgraph_sdk", "langgraph_runtime_inmem")
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing and CLI.exists():
        return
    reason = f"the Agent Server is not installed ({', '.join(missing) or CLI}): pip install -e '.[server]'"
    if "agent-server" in REQUIRED:
        pytest.fail(f"{reason} (CHECKPOINT_SQL_REQUIRE_ENGINES requires it)")
    pytest.skip(reason)


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"no free loopback port in {PORTS}")


@contextlib.contextmanager
def agent_server(project: Path, url: str, log: Path) -> Iterator[str]:
    """``langgraph dev`` on `project` with ``CHECKPOINT_SQL_URL=url``: yields its
    address once it answers, and stops it (its whole process group) afterwards."""
    port = free_port()
    env = {**os.environ, **OFFLINE, "CHECKPOINT_SQL_URL": url, "PYTHONPATH": str(ROOT)}
    command = [str(CLI), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        server = subprocess.Popen(
            command, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, f"langgraph dev exited ({server.returncode}):\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"langgraph dev did not answer within 90 s:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{address}/ok", timeout=2) as answer:
                if answer.status == 200:
                    break
            time.sleep(0.25)
        yield address
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A deployment folder: the graph and a langgraph.json naming our factories.
    (Databases live elsewhere: a SQLite file in a watched folder would make a
    reloading dev server reload on every write.)"""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "graph.py").write_text(GRAPH)
    config = json.loads(readme_langgraph_json())
    assert config["graphs"] == {"agent": "./graph.py:graph"}
    config["graphs"]["log"] = "./graph.py:log"
    (folder / "langgraph.json").write_text(json.dumps(config))
    return folder


def thread_config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


# --- the factories, configured from the environment ------------------------------------------


async def test_the_checkpointer_factory_sets_up_a_retried_saver(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKPOINT_SQL_URL", db_url)
    monkeypatch.setenv("CHECKPOINT_SQL_TABLE_PREFIX", "agents_")
    async with server.checkpointer() as saver:
        assert isinstance(saver, RetryingSaver) and isinstance(saver.inner, SQLSaver)
        assert saver.inner.tables.prefix == "agents_"
        put_chain(saver.inner, "t", 3)
        for strategy in ("keep_latest", "delete", "delete_all"):
            await saver.aprune(["t"], strategy=strategy)  # every name the server sends
        assert await saver.aget_tuple(thread_config("t")) is None
    monkeypatch.setenv("CHECKPOINT_SQL_RETRY", "off")
    monkeypatch.setenv("CHECKPOINT_SQL_RETAIN_KEEP_LAST", "1")
    async with server.checkpointer() as saver:
        assert isinstance(saver, SQLSaver)


async def test_the_store_factory_takes_its_index_and_ttl_from_the_environment(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "embed.py").write_text("def embed(texts):\n    return [[float(len(t)), 1.0] for t in texts]\n")
    monkeypatch.setenv("CHECKPOINT_SQL_URL", db_url)
    index = {"dims": 2, "embed": f"{tmp_path}/embed.py:embed", "fields": ["text"]}
    monkeypatch.setenv("CHECKPOINT_SQL_STORE_INDEX", json.dumps(index))
    monkeypatch.setenv("CHECKPOINT_SQL_STORE_TTL", json.dumps({"default_ttl": 60, "sweep_interval_minutes": 1}))
    async with server.store() as store:
        assert isinstance(store, SQLStore) and store.ttl_config == {"default_ttl": 60, "sweep_interval_minutes": 1}
        await store.aput(("docs",), "short", {"text": "tea"})
        await store.aput(("docs",), "long", {"text": "a much longer text"})
        found = await store.asearch(("docs",), query="tea!")
        assert [item.key for item in found] == ["short", "long"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHECKPOINT_SQL_RETRY", "maybe", "CHECKPOINT_SQL_RETRY must be one of"),
        ("CHECKPOINT_SQL_STORE_INDEX", "{dims: 3}", "CHECKPOINT_SQL_STORE_INDEX is not valid JSON"),
        ("CHECKPOINT_SQL_STORE_TTL", "[1]", "CHECKPOINT_SQL_STORE_TTL must be a JSON object"),
        ("CHECKPOINT_SQL_RETAIN_KEEP_LAST", "ten", "CHECKPOINT_SQL_RETAIN_KEEP_LAST must be a whole number"),
        ("CHECKPOINT_SQL_RETAIN_OLDER_THAN", "30", "CHECKPOINT_SQL_RETAIN_OLDER_THAN: malformed duration"),
        ("CHECKPOINT_SQL_STORE_INDEX", '{"dims": 2, "embed": "./nowhere.py:f"}', "names no Python file"),
    ],
)
def test_a_bad_setting_names_its_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        server.Settings.from_env({name: value})


# --- the real server ----------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_langgraph_dev_runs_on_our_tables_and_resumes_after_a_restart(
    engine: str, project: Path, tmp_path: Path
) -> None:
    _require_agent_server()
    require(engine)
    from langgraph_sdk import get_client

    log = tmp_path / "server.log"
    (tmp_path / "data").mkdir()
    with fresh_database(engine, tmp_path / "data") as url:
        with agent_server(project, url, log) as address:
            client = get_client(url=address)
            thread = (await client.threads.create(metadata={"user": "ann"}))["thread_id"]
            await client.runs.wait(thread, "agent", input=QUESTION)
            paused = await client.threads.get_state(thread)
            assert paused["next"] == ["approve"]
            assert paused["tasks"][0]["interrupts"][0]["value"] == {"question": "run lookup('red')?"}
            await client.runs.wait(thread, "agent", command={"resume": "yes"})
            history = await client.threads.get_history(thread, limit=100)
            loops = await client.threads.get_history(thread, limit=100, metadata={"source": "loop"})
            assert (await client.threads.get_state(thread))["tasks"][0]["interrupts"][0]["value"] == {
                "question": "run lookup('green')?"
            }

            copy = (await client.threads.copy(thread))["thread_id"]
            first_pause = next(s for s in reversed(history) if s["next"] == ["approve"])
            fork_point = first_pause["checkpoint"]["checkpoint_id"]
            fork = await client.threads.update_state(
                copy,
                {"messages": [{"type": "human", "content": "blue", "id": "human-0"}]},
                as_node="agent",
                checkpoint_id=fork_point,
            )
            logged = (await client.threads.create())["thread_id"]
            await client.runs.wait(logged, "log", input={"log": [], "count": len(LOG)})
            assert (await client.threads.get_state(logged))["values"]["log"] == LOG
            scratch = (await client.threads.create())["thread_id"]
            await client.runs.wait(scratch, "agent", input=QUESTION)
            await client.store.put_item(["memories", "ann"], "tea", {"text": "prefers green tea"})
            found = await client.store.search_items(["memories"], limit=5)
            assert [item["key"] for item in found["items"]] == ["tea"]

            with SQLSaver(url) as saver:
                ours = list(saver.list(thread_config(thread)))
                assert [t.config["configurable"]["checkpoint_id"] for t in ours] == [
                    s["checkpoint"]["checkpoint_id"] for s in history
                ]
                assert len(loops) == len(list(saver.list(thread_config(thread), filter={"source": "loop"}))) > 0
                assert ours[0].metadata["user"] == "ann", "the server's metadata is stored"
                forked = saver.get_tuple(
                    {"configurable": {"thread_id": copy, "checkpoint_id": fork["checkpoint"]["checkpoint_id"]}}
                )
                assert forked.metadata["source"] == "update"
                assert forked.parent_config["configurable"]["checkpoint_id"] == fork_point
                assert forked.checkpoint["channel_values"]["messages"][0].content == "blue"
                assert len(list(saver.list(thread_config(copy)))) == len(ours) + 1
            with SQLStore(url) as store:
                assert store.get(("memories", "ann"), "tea").value == {"text": "prefers green tea"}

            await client.threads.delete(copy)
            assert (await client.threads.prune([scratch], strategy="delete"))["pruned_count"] == 1
            with SQLSaver(url) as saver:
                assert list(saver.list(thread_config(copy))) == [] and list(saver.list(thread_config(scratch))) == []
                assert len(list(saver.list(thread_config(thread)))) == len(ours), "the original is untouched"

        with agent_server(project, url, log) as address:
            client = get_client(url=address)
            assert (await client.threads.get_state(thread))["next"] == ["approve"], "the pause survived the restart"
            done = await client.runs.wait(thread, "agent", command={"resume": "yes"})
            assert done["messages"][-1]["content"] == "answer: RED, GREEN"
            assert (await client.store.get_item(["memories", "ann"], "tea"))["value"] == {"text": "prefers green tea"}
            assert (await client.threads.get_state(logged))["values"]["log"] == LOG, "rebuilt from our tables"

        with SQLSaver(url) as saver:
            latest = saver.get_tuple(thread_config(thread))
            assert latest.checkpoint["channel_values"]["messages"][-1].content == "answer: RED, GREEN"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
