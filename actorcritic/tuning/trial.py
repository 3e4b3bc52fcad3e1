"""One trial: an `actorcritic train` child process, watched through its metrics.csv.

The training loop knows nothing of tuning: the periodic evaluations it logs
(`eval/mean_return` rows of RUN_DIR/metrics.csv) are the intermediate values, SIGTERM is
how a pruned trial stops (the run writes a final checkpoint and exits cleanly), and the
final evaluation in RUN_DIR/summary.json is the objective.
"""

from __future__ import annotations

import csv
import ctypes
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EVAL_COLUMN = "eval/mean_return"
PR_SET_PDEATHSIG = 1


def train_command(preset: str, run_dir: Path, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "actorcritic.cli", "train", preset, "--run-dir", str(run_dir),
            "--quiet", "--set", *overrides]


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


class TrialProcess:
    """A running trial. `new_evals()` gives the evaluations logged since the last call."""

    def __init__(self, number: int, preset: str, run_dir: Path, overrides: list[str],
                 eval_every: int):
        self.number, self.run_dir, self.eval_every = number, Path(run_dir), eval_every
        self.command = train_command(preset, run_dir, overrides)
        self.log_path = self.run_dir.with_suffix(".log")
        self.pruned = False
        self.last_step: int | None = None
        self._read = 0  # bytes of metrics.csv already read
        self._columns: list[str] | None = None
        libc = _libc()
        log = open(self.log_path, "w")
        try:
            # Own session: a Ctrl-C in the terminal reaches the search only, which stops the
            # trials with one SIGTERM each. PDEATHSIG: a killed search takes them along.
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)) if libc
                else None)
        finally:
            log.close()
        self.started = time.monotonic()

    @property
    def wall_seconds(self) -> float:
        return time.monotonic() - self.started

    def poll(self) -> int | None:
        return self.proc.poll()

    def new_evals(self) -> list[tuple[int, float]]:
        """(step, eval mean return) per new evaluation; step is the scheduled env step
        (k * eval_every), so that trials with different batch sizes compare at one step."""
        path = self.run_dir / "metrics.csv"
        try:
            with open(path, "rb") as fh:
                fh.seek(self._read)
                chunk = fh.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n") + 1  # whole lines only: the run may be mid-row
        self._read += end
        out = []
        for row in csv.reader(io.StringIO(chunk[:end].decode())):
            if self._columns is None:
                self._columns = row
                continue
            value = dict(zip(self._columns, row)).get(EVAL_COLUMN, "")
            if value:
                steps = int(float(row[0]))
                out.append((steps // self.eval_every * self.eval_every, float(value)))
                self.last_step = steps
        return out

    def terminate(self) -> None:
        """Ask the run to stop (it finishes the update and writes a final checkpoint)."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 30.0) -> None:
        """Terminate and wait; kill the run's whole session if it does not stop in time."""
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def summary(self) -> dict[str, Any] | None:
        return read_summary(self.run_dir)

    def last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text().splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def objective(summary: dict[str, Any] | None) -> float | None:
    """The final evaluation's mean return of a run that finished; else None."""
    if not summary or summary.get("status") != "finished":
        return None
    ev = summary.get("eval") or {}
    return ev.get("mean_return")
