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
    """Processes that `pid` started (zombies included), read from /proc: its children and
    theirs, since local workers are forked by a fork server that `pid` started."""
    kids: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), set()).add(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in kids.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
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
def cli_process(args: list[str], sigint_ignored: bool = False, env: dict | None = None,
                cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """A CLI run as a subprocess in its own process group (text pipes), killed with its whole
    group whatever the test does. `sigint_ignored`: started as a script's background job is
    (`cmd &` in a shell without job control), with SIGINT ignored."""
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=ignore, env=env, cwd=cwd)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def signal_state(pid: int) -> str:
    """Whether SIGINT is blocked, ignored or caught in process `pid` (from /proc), to tell a
    signal that never arrived from one that was handled."""
    bit, out = 1 << (signal.SIGINT - 1), []
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "gone"
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("SigBlk", "SigIgn", "SigCgt"):
            out.append(f"SIGINT {name[3:].lower()}: {bool(int(value, 16) & bit)}")
    return ", ".join(out)


def wait_for_metrics(proc: subprocess.Popen, run_dir: Path, rows: int = 2,
                     timeout: float = 120) -> None:
    """Wait until a CLI training run has logged `rows` rows to metrics.csv (it is running
    its loop); fail if it exits first or takes longer than `timeout` seconds."""
    metrics, deadline = run_dir / "metrics.csv", time.time() + timeout
    while not metrics.exists() or len(metrics.read_text().splitlines()) <= rows:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"no {rows} rows in {metrics} after {timeout} s"
        time.sleep(0.2)
