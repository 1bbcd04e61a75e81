"""The command as a new user types it: options before the subcommand's name, and
thread ids that stay whole on a narrow terminal or in a pipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpoint_sql import SQLSaver
from tests.cli_helpers import all_tuples, run
from tests.helpers import put_chain

LONG_IDS = [
    "trip-20261122-133658-5f1e2d9c4b7a",
    "customer-support/eu-west-1/tenant-0042/conversation-7f3a9e21c4d8b6a0f5e3",
    "short",
]


@pytest.fixture
def url(tmp_path: Path) -> str:
    database = f"sqlite:///{tmp_path}/ids.db"
    with SQLSaver(database) as saver:
        saver.setup()
        for thread in LONG_IDS:
            put_chain(saver, thread, 3)
    return database


def test_global_options_go_before_or_after_the_subcommand(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    exported = tmp_path / "all.cpsql"
    assert run(capsys, "--url", url, "export", "--all", "-o", str(exported)).code == 0
    target = f"sqlite:///{tmp_path}/copy.db"
    imported = run(capsys, "--url", target, "--json", "import", str(exported))
    assert imported.code == 0, imported.err
    assert imported.json["threads"] == len(LONG_IDS)
    with SQLSaver(url) as source, SQLSaver(target) as copy:
        assert all_tuples(copy).keys() == all_tuples(source).keys()

    before = run(capsys, "--json", "--url", url, "threads").json
    after = run(capsys, "threads", "--url", url, "--json").json
    assert before == after and before["total"] == len(LONG_IDS)
    nowhere = f"sqlite:///{tmp_path}/nowhere.db"
    assert run(capsys, "--url", nowhere, "threads", "--url", url, "--json").json["total"] == 3, "the later one wins"
    assert "drop --json" in run(capsys, "--json", "demo").failed_cleanly(code=2)


def first_column(table: str) -> list[str]:
    """The ids of a printed threads table, each put back together from the lines it
    was folded over (a row starts where its second column has a value)."""
    ids: list[str] = []
    for line in table.splitlines():
        cells = line.split("│")[1:-1]
        if len(cells) < 2:
            continue
        if cells[1].strip():
            ids.append("")
        ids[-1] += cells[0].strip()
    return ids


@pytest.mark.parametrize("columns", [80, 60, 200])
def test_thread_ids_are_never_cut(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str, columns: int
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    listed = run(capsys, "threads", "--url", url, "--sort", "id", "--asc")
    assert listed.code == 0, listed.err
    assert all(len(line) <= columns for line in listed.out.splitlines())
    assert first_column(listed.out) == sorted(LONG_IDS)
    assert "…" not in "".join(first_column(listed.out))
    if columns >= 200:
        assert all(thread in listed.out for thread in LONG_IDS), "folded only when short of room"

    pruned = run(capsys, "prune", "--keep-last", "1", "--dry-run", "--url", url)
    assert sorted(first_column(pruned.out)) == sorted(LONG_IDS)
