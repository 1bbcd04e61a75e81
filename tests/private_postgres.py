"""A throw-away PostgreSQL server that a test may stop and start at will.

The shared server on port 5432 serves other test runs at the same time, so a test that
restarts a server gets one of its own: a fresh cluster in a temporary directory (made
with `initdb`, trust authentication, a free TCP port on 127.0.0.1, its socket in the
same directory), removed afterwards. `initdb` refuses to run as root, so under root
every server command runs as the ``postgres`` user, who owns the directory.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` directory (Debian layout), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivatePostgres:
    """One cluster: `start()`, `stop()`, `url`, and `remove()` when done.

    `port` fixes the TCP port (else a free one is picked); `settings` are passed to the
    server as ``-c name=value`` at every start. With `standby_of`, the data directory is
    a base backup of that (running) server, set up as its hot standby (``pg_basebackup
    -R``) instead of a new cluster.
    """

    def __init__(
        self,
        binaries: Path,
        *,
        port: int | None = None,
        settings: dict[str, str] | None = None,
        standby_of: PrivatePostgres | None = None,
    ) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="cpsql-private-pg-"))
        self.data = self.root / "data"
        self.port = port or _free_port()
        self.settings = dict(settings or {})
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        if standby_of is None:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        else:
            self._run(
                "pg_basebackup", "-D", str(self.data), "-R", "-X", "stream", "--no-sync",
                "-h", "127.0.0.1", "-p", str(standby_of.port), "-U", "postgres",
            )  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.binaries / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        """Stop now: open sessions are terminated, as in a restart or a failover."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it started, as a crash of the
        machine would end them: nothing is flushed or shut down cleanly."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == postmaster]
        for pid in (postmaster, *children):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in (postmaster, *children):
            while Path(f"/proc/{pid}").exists() and _parent(Path(f"/proc/{pid}")) is not None:
                time.sleep(0.01)
        (self.data / "postmaster.pid").unlink(missing_ok=True)

    def promote(self) -> None:
        """Turn this hot standby into a primary, and wait until it accepts writes."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        """Stop the server if it runs, and delete its directory."""
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _parent(proc: Path) -> int | None:
    """The parent pid of the process `/proc/PID` describes, None once it is gone (or a zombie)."""
    try:
        fields = (proc / "stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[1])
