"""Process helpers for fault tests: which children a process has, and whether they live."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def children(pid: int) -> set[int]:
    """Child processes of `pid` (zombies included), read from /proc."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def exists(pid: int) -> bool:
    """A process with this pid exists (running or zombie)."""
    return Path(f"/proc/{pid}").exists()


def running(pid: int) -> bool:
    """A process with this pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def cli_process(args: list[str]) -> Iterator[subprocess.Popen]:
    """A CLI run as a subprocess in its own process group (text pipes), killed with its whole
    group whatever the test does."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for_metrics(proc: subprocess.Popen, run_dir: Path, rows: int = 2,
                     timeout: float = 120) -> None:
    """Wait until a CLI training run has logged `rows` rows to metrics.csv (it is running
    its loop); fail if it exits first or takes longer than `timeout` seconds."""
    metrics, deadline = run_dir / "metrics.csv", time.time() + timeout
    while not metrics.exists() or len(metrics.read_text().splitlines()) <= rows:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"no {rows} rows in {metrics} after {timeout} s"
        time.sleep(0.2)
