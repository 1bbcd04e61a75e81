"""Bad input to the command: one clear line on stderr, a non-zero exit, no traceback,
and nothing changed. Plus the console script itself, run as a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from checkpoint_sql import SQLSaver
from tests import lineages
from tests.cli_helpers import all_tuples, run
from tests.graphs import question
from tests.helpers import put_chain, snapshot


@pytest.fixture
def url(db_url: str) -> str:
    with SQLSaver(db_url) as saver:
        saver.setup()
        put_chain(saver, "present", 3)
    return db_url


@pytest.mark.parametrize(
    "args",
    [
        ["history", "ghost"],
        ["show", "ghost"],
        ["diff", "ghost", "a", "b"],
        ["delete", "present", "ghost", "--yes"],
        ["copy", "ghost", "other", "--yes"],
        ["export", "ghost", "-o", "{tmp}/out.cpsql"],
        ["prune", "--keep-last", "1", "--thread", "ghost", "--yes"],
    ],
    ids=lambda a: a[0],
)
def test_an_unknown_thread_is_one_line_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path, args: list[str]
) -> None:
    with SQLSaver(url) as saver:
        before = snapshot(saver)
        line = run(capsys, *(a.format(tmp=tmp_path) for a in args), "--url", url).failed_cleanly()
        assert snapshot(saver) == before
    assert line.startswith("error: ") and "'ghost'" in line
    assert not (tmp_path / "out.cpsql").exists()


def test_an_unknown_checkpoint_or_channel_is_one_line(capsys: pytest.CaptureFixture[str], url: str) -> None:
    assert "no checkpoint 'zzz'" in run(capsys, "show", "present", "zzz", "--url", url).failed_cleanly()
    line = run(capsys, "show", "present", "--channel", "nope", "--url", url).failed_cleanly()
    assert "no channel 'nope'" in line and "step" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["prune", "--older-than", "30x"], "malformed duration '30x'"),
        (["prune", "--older-than", "30"], "malformed duration '30'"),
        (["prune", "--keep-last", "0"], "expected a whole number >= 1"),
        (["threads", "--filter", "nokey"], "expected KEY=VALUE"),
        (["threads", "--sort", "colour"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_a_malformed_command_line_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert expected in run(capsys, *args).failed_cleanly(code=2)


def test_unreachable_missing_or_unprepared_databases_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    down = "postgresql://postgres:secret@127.0.0.1:1/nowhere"
    line = run(capsys, "threads", "--url", down).failed_cleanly()
    assert "cannot connect to postgresql://postgres:***@127.0.0.1:1/nowhere" in line and "secret" not in line

    line = run(capsys, "history", "t", "--url", f"sqlite:///{tmp_path}/missing.db").failed_cleanly()
    assert "no database file" in line and not (tmp_path / "missing.db").exists()

    (tmp_path / "empty.db").touch()
    assert "checkpoint-sql migrate" in run(capsys, "stats", "--url", f"sqlite:///{tmp_path}/empty.db").failed_cleanly()
    assert "unsupported database 'oracle'" in run(capsys, "stats", "--url", "oracle://x/y").failed_cleanly()
    assert "needs --keep-last" in run(capsys, "prune", "--url", f"sqlite:///{tmp_path}/empty.db").failed_cleanly()


def test_a_bad_export_file_is_refused_with_where_it_went_wrong(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    exported = tmp_path / "good.cpsql"
    assert run(capsys, "export", "present", "-o", str(exported), "--url", url).code == 0
    data = exported.read_bytes()
    cases = {
        "missing.cpsql": (None, "No such file or directory"),
        "text.cpsql": (b"hello, world", "not a checkpoint-sql export"),
        "cut.cpsql": (data[: len(data) // 2], "cut short"),
        "future.cpsql": (msgpack.packb({"format": "checkpoint-sql-export", "version": 9}), "version 9 is newer"),
    }
    with SQLSaver(url) as saver:
        before = snapshot(saver)
        for name, (content, expected) in cases.items():
            if content is not None:
                (tmp_path / name).write_bytes(content)
            assert expected in run(capsys, "import", str(tmp_path / name), "--url", url).failed_cleanly(), name
        assert snapshot(saver) == before
    assert "already exists" in run(capsys, "import", str(exported), "--url", url).failed_cleanly()


def test_encrypted_values_move_as_they_are_and_are_not_shown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_url: str
) -> None:
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"0123456789abcdef")
    source = f"sqlite:///{tmp_path}/secret.db"
    with SQLSaver(source, serde=serde) as saver:
        saver.setup()
        lineages.compiled("agent", saver).invoke(question("secret"), lineages.cfg("agent"))
        expected = all_tuples(saver)
    line = run(capsys, "history", "agent", "--url", source).failed_cleanly()
    assert "msgpack+aes" in line and "cannot decode" in line
    assert run(capsys, "threads", "--url", source, "--json").json["total"] == 1
    assert run(capsys, "export", "agent", "-o", str(tmp_path / "secret.cpsql"), "--url", source).code == 0
    assert run(capsys, "import", str(tmp_path / "secret.cpsql"), "--url", db_url).code == 0
    with SQLSaver(db_url, serde=serde) as saver:
        assert all_tuples(saver) == expected


def test_the_console_script_runs_as_a_process_with_plain_piped_output(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/lineages.db"
    lineages.build(database)
    script = shutil.which("checkpoint-sql", path=str(Path(sys.executable).parent)) or "checkpoint-sql"
    env = {**os.environ, "CHECKPOINT_SQL_URL": database, "COLUMNS": "200"}
    env.pop("FORCE_COLOR", None)

    done = subprocess.run([script, "history", "agent"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "thread agent: " in done.stdout
    assert "\x1b[" not in done.stdout, "piped output carries no colour codes"

    dry = subprocess.run(
        [script, "prune", "--keep-last", "1", "--dry-run"], capture_output=True, text=True, env=env, timeout=60
    )
    assert dry.returncode == 0 and "would delete" in dry.stdout

    failed = subprocess.run([script, "show", "ghost"], capture_output=True, text=True, env=env, timeout=60)
    assert failed.returncode == 1 and failed.stderr.strip() == "error: no such thread: 'ghost'"

    other = f"sqlite:///{tmp_path}/other.db"
    exporter = subprocess.Popen([script, "export", "agent", "log", "-o", "-"], stdout=subprocess.PIPE, env=env)
    imported = subprocess.run(
        [script, "import", "-", "--url", other, "--json"],
        stdin=exporter.stdout,
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert exporter.wait(60) == 0 and imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["thread_ids"] == ["agent", "log"]
