"""What a retry repeats, and why that is safe: faults injected on the wire by a proxy
between the saver and a real PostgreSQL or MariaDB server.

* A commit whose acknowledgement is lost: the transaction is committed, the saver is
  told "connection lost", and the retry runs the whole operation a second time. Each
  operation must leave the same rows as if it had run once; `copy_thread`, which
  refuses an existing target, must recognise its own earlier copy.
* A connection cut in the middle of a `list`: the listing resumes, and no checkpoint
  is yielded twice or skipped, even when the thread changes meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from checkpoint_sql import RetryingSaver, RetryPolicy, SQLSaver, ThreadExistsError
from checkpoint_sql.saver.sql_saver import LIST_PAGE
from tests.conftest import fresh_database, require
from tests.faults import FaultyProxy, faulty_proxy, retries_logged
from tests.helpers import checkpoint, config, snapshot

SERVERS = pytest.mark.parametrize("server", ["postgresql", "mysql"])
APIS = pytest.mark.parametrize("api", ["sync", "async"])
POLICY = RetryPolicy(max_retries=3, base_delay=0.02, jitter=0)


@pytest.fixture(autouse=True)
def _capture_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="checkpoint_sql.retry.policy")


@asynccontextmanager
async def proxied_saver(server: str, tmp_path: Path) -> AsyncIterator[tuple[RetryingSaver[str], FaultyProxy]]:
    """A set-up retrying saver on a fresh database, reached through a `FaultyProxy`."""
    require(server)
    with fresh_database(server, tmp_path) as url, faulty_proxy(url) as (proxy, proxied_url):
        async with RetryingSaver.from_conn_string(proxied_url, policy=POLICY) as saver:
            await saver.asetup()
            yield saver, proxy


def ids(tuples: list[Any]) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in tuples]


async def listed(api: str, saver: Any, thread_id: str, *, stop_after: int | None = None) -> list[Any]:
    """The thread's listing through `api`; with `stop_after`, only its first items."""
    found: list[Any] = []
    if api == "sync":
        for item in saver.list(config(thread_id)):
            found.append(item)
            if len(found) == stop_after:
                break
    else:
        async for item in saver.alist(config(thread_id)):
            found.append(item)
            if len(found) == stop_after:
                break
    return found


# --- a commit whose acknowledgement is lost ---------------------------------------------


@APIS
@SERVERS
async def test_writes_repeated_after_a_lost_commit_acknowledgement_leave_the_same_rows(
    server: str, api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`put` upserts its checkpoint and inserts-or-ignores its blobs; `put_writes`
    keeps the first write of each (task, index) and rewrites special channels with the
    same value. So the second run of each, after the first one committed unbeknown to
    the saver, changes nothing: the rows equal those of a saver that ran each call once
    on a healthy connection."""
    cp = checkpoint({"messages": ["hello"], "count": 1})
    writes = [("messages", "next"), ("__interrupt__", {"ask": "ok?"})]
    async with proxied_saver(server, tmp_path) as (saver, proxy):
        for operation in ("put", "put_writes"):
            proxy.lose_commit_ack()
            if operation == "put":
                args: tuple[Any, ...] = (config("t"), cp, {"step": 1}, {"messages": 1, "count": 1})
            else:
                args = (config("t", cp["id"]), writes, "task-1")
            if api == "sync":
                getattr(saver, operation)(*args)
            else:
                await getattr(saver, "a" + operation)(*args)
        assert proxy.faults == 2
        repeated = snapshot(saver.inner)  # type: ignore[arg-type]

        once = SQLSaver.from_conn_string(saver.inner.db.url, table_prefix="once_")  # type: ignore[attr-defined]
        with once:
            once.setup()
            once.put(config("t"), cp, {"step": 1}, {"messages": 1, "count": 1})
            once.put_writes(config("t", cp["id"]), writes, "task-1")
            healthy = snapshot(once)

    def rows(tables: dict[str, Any]) -> list[Any]:
        return [tables[name] for name in sorted(tables, key=lambda n: n.split("_", 1)[1])]

    assert rows(repeated) == rows(healthy)
    assert [r.operation for r in retries_logged(caplog)] == [
        f"SQLSaver.{prefix}{op}" for prefix in ("" if api == "sync" else "a",) for op in ("put", "put_writes")
    ]


@APIS
@SERVERS
async def test_copy_thread_repeated_after_a_lost_commit_acknowledgement_recognises_its_own_copy(
    server: str, api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first attempt copies the thread and commits; its acknowledgement is lost.
    Repeated, the inner saver refuses the now existing target (`ThreadExistsError`);
    the wrapper finds that the target holds exactly the source's checkpoints and
    reports success. A plain `SQLSaver` on the same fault shows the trap."""
    async with proxied_saver(server, tmp_path) as (saver, proxy):
        parent = config("source")
        for step in range(3):
            parent = saver.put(parent, checkpoint({"step": step}), {"step": step}, {"step": step + 1})

        proxy.lose_commit_ack()
        if api == "sync":
            saver.copy_thread("source", "copy")
        else:
            await saver.acopy_thread("source", "copy")
        assert ids(await listed(api, saver, "copy")) == ids(await listed(api, saver, "source"))

        plain = saver.inner
        proxy.lose_commit_ack()
        with pytest.raises(sa.exc.OperationalError):
            plain.copy_thread("source", "plain-copy")
        with pytest.raises(ThreadExistsError):
            plain.copy_thread("source", "plain-copy")
        assert proxy.faults == 2

    retries = retries_logged(caplog)
    assert [r.operation for r in retries] == [f"RetryingSaver.{'' if api == 'sync' else 'a'}copy_thread.attempt"]


async def test_copy_thread_still_refuses_a_target_that_existed_before(tmp_path: Path) -> None:
    """Recognising an earlier copy applies only to a repeat: on a first attempt, an
    existing target is refused as always, even when it happens to be an exact copy."""
    async with RetryingSaver.from_conn_string(f"sqlite:///{tmp_path}/t.db", policy=POLICY) as saver:
        saver.setup()
        saver.put(config("source"), checkpoint({"a": 1}), {}, {"a": 1})
        saver.copy_thread("source", "copy")
        with pytest.raises(ThreadExistsError):
            saver.copy_thread("source", "copy")
        with pytest.raises(ThreadExistsError):
            await saver.acopy_thread("source", "copy")


# --- a connection cut in the middle of a listing ---------------------------------------

CHAIN = LIST_PAGE + 30
"""Checkpoints in the listed thread: two pages, so the second page is a new query."""


@APIS
@SERVERS
async def test_a_listing_cut_between_pages_resumes_without_repeating_or_skipping(
    server: str, api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three listings of one thread, each cut as it fetches its second page: as is, after
    a newer checkpoint was added meanwhile (it is not yielded among the older ones), and
    after the last checkpoint yielded was deleted meanwhile (the listing still ends with
    every older one). Each yields exactly the checkpoints the thread held when it began,
    newest first, once each."""
    async with proxied_saver(server, tmp_path) as (saver, proxy):
        parent = config("long")
        for step in range(CHAIN):
            metadata = {"step": step, "run_id": f"run-{step}"}
            parent = saver.put(parent, checkpoint({"step": step}), metadata, {"step": step + 1})

        async def cut_after_first_page(meanwhile: Any) -> tuple[list[str], list[str]]:
            """What the thread held when the listing began, and what the listing yielded."""
            held = ids(await listed(api, saver, "long"))
            source = saver.list(config("long")) if api == "sync" else saver.alist(config("long"))
            found: list[Any] = []
            while True:
                if len(found) == LIST_PAGE:
                    meanwhile(found[-1])
                    proxy.cut_before(b"cpsql_checkpoints")
                try:
                    found.append(next(source) if api == "sync" else await anext(source))
                except (StopIteration, StopAsyncIteration):
                    return held, ids(found)

        def add_newer(_: Any) -> None:
            saver.put(parent, checkpoint({"step": "new"}, {"step": CHAIN + 1}), {"run_id": "new"}, {"step": CHAIN + 1})

        def delete_last_yielded(last: Any) -> None:
            saver.delete_for_runs([last.metadata["run_id"]])

        listings = [await cut_after_first_page(change) for change in (lambda _: None, add_newer, delete_last_yielded)]

    retries = retries_logged(caplog)
    print(f"\n[retry-repeats] list cut {server}/{api}: listings=3, cuts={proxy.faults}, retries={len(retries)}")
    for held, yielded in listings:
        assert yielded == held
    assert [len(held) for held, _ in listings] == [CHAIN, CHAIN, CHAIN + 1]
    assert proxy.faults == 3 and len(retries) == 3
