"""What every kind of worker shares, whether it is a local process (A3C workers and their
evaluator, A2C helper processes, IMPALA actors) or a Ray actor:

- `worker_seed`: one formula for the seed of worker i's n-th incarnation;
- `child_setup`: what a worker process does first (ignore Ctrl-C, name itself, one thread);
- `ErrorReport`: the one envelope a worker's error travels in, and `raise_report`, which
  turns it into the main process's exception (a user error keeps its class);
- `WorkerPool`: the supervision of a set of workers: a worker that exited or went silent
  for `run.worker_timeout` seconds is restarted, at most `run.max_worker_restarts` times
  over the whole pool, then the run fails with one line. How a worker is started, stopped
  and heard from is the caller's `WorkerTransport`; when to restart it is decided here.
- `process_context` / `start_process` / `reap_process`: the one way local worker
  processes start (a fork server that has imported torch and the workers' modules once);
  start one with Ctrl-C ignored from its first instruction; stop one for good (ask,
  SIGTERM, SIGKILL).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

import torch

from actorcritic import errors
from actorcritic.errors import NonFiniteError, UserError, WorkerFailure
from actorcritic.models.precision import flush_denormals

STARTUP_GRACE = 120.0  # seconds a new worker may take to be heard from (its first env, its imports)

# When this process was last continued (SIGCONT: `fg` after Ctrl-Z), on the monotonic clock.
# A worker's silence is counted from then at the earliest: it was stopped with us.
_continued_at = 0.0


def _on_continue(signum, frame) -> None:
    global _continued_at
    _continued_at = time.monotonic()


def watch_for_continue() -> None:
    """Note every SIGCONT (a handler in the main thread; elsewhere, nothing to do)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCONT, _on_continue)


def worker_seed(run_seed: int, index: int, incarnation: int = 0, updates: int = 0) -> int:
    """The seed of worker `index`'s `incarnation`-th start (0 first, 1 after one restart),
    in a run that starts at `updates` (non-zero when resumed, so that a resumed run does not
    replay the random streams its start already used)."""
    return run_seed + updates + 1000 * (index + 1) + 100_003 * incarnation


def child_setup(name: str, seed: int | None, flush_subnormals: bool) -> None:
    """First thing in a worker process. The main process decides what a Ctrl-C means (it
    also reaches the children, who share the terminal's process group); SIGTERM keeps its
    default so terminate() works. A spawned process starts with IEEE subnormals, so it sets
    `run.flush_denormals` again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_process_name(name)
    flush_denormals(flush_subnormals)
    torch.set_num_threads(1)
    if seed is not None:
        torch.manual_seed(seed)


def set_process_name(name: str) -> None:
    """Name the OS process (shown by ps/top, and how tests find a worker): Linux only."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------- the error envelope

@dataclass(frozen=True)
class ErrorReport:
    """A worker's exception as it crosses to the main process (plain strings, so it
    pickles whatever the exception held)."""

    who: str        # "A3C worker 1", "IMPALA worker 0", "A2C process 2", "Ray worker 3"
    kind: str       # the exception's class name
    message: str
    trace: str = ""

    @classmethod
    def of(cls, who: str, exc: BaseException, trace: str | None = None) -> ErrorReport:
        return cls(who, type(exc).__name__, str(exc),
                   traceback.format_exc() if trace is None else trace)

    @property
    def user_error(self) -> bool:
        """A bad env, config or a NaN: restarting the worker would only repeat it."""
        cls = getattr(errors, self.kind, None)
        return isinstance(cls, type) and issubclass(cls, (UserError, NonFiniteError))

    def text(self) -> str:
        return f"{self.who}: {self.kind}: {self.message}"


def raise_report(report: ErrorReport) -> NoReturn:
    """Re-raise a worker's error in the main process: a user error or a NaN keeps its class
    (so the CLI prints it as one line with its exit code), anything else is a
    WorkerFailure naming the worker."""
    if report.user_error:
        raise getattr(errors, report.kind)(f"{report.who}: {report.message}")
    raise WorkerFailure(report.text())


def send_report(conn, who: str, exc: BaseException) -> None:
    """A worker's last message over its pipe: ("error", ErrorReport)."""
    try:
        conn.send(("error", ErrorReport.of(who, exc)))
    except Exception:  # the pipe may be gone; the exit code still tells the main process
        pass


# ---------------------------------------------------------------- supervision

class WorkerTransport(Protocol):
    """How a pool's workers run: local processes, or Ray actors."""

    def start_worker(self, index: int, seed: int) -> None:
        """Start worker `index` (a fresh incarnation) with this seed."""

    def stop_worker(self, index: int) -> None:
        """Stop worker `index` for good (it may already be gone)."""

    def exit_code(self, index: int) -> int | None:
        """The worker's exit code once it has exited, else None."""


@dataclass
class WorkerState:
    incarnation: int = -1
    last_seen: float = 0.0
    heard: bool = False        # past start-up: it has reported at least once
    busy: bool = False         # doing something long on request (an evaluation): not a hang
    error: str | None = None   # what it said before it died
    running: bool = False      # started and not stopped by the pool


@dataclass
class WorkerPool:
    """Heartbeats, restarts and the restart budget of `count` workers named "{kind} {i}"."""

    kind: str                  # "A3C worker", "IMPALA worker", "Ray worker"
    count: int
    transport: WorkerTransport
    timeout: float             # run.worker_timeout
    max_restarts: int          # run.max_worker_restarts, over the whole pool
    run_seed: int
    updates: int = 0           # the update the run (or its resume) started at
    names: list[str] = field(default_factory=list)
    restarts: int = 0
    checked_at: float = field(default_factory=time.monotonic)  # the last `check()`

    def __post_init__(self) -> None:
        watch_for_continue()
        self.workers = [WorkerState() for _ in range(self.count)]
        if not self.names:
            self.names = [f"{self.kind} {i}" for i in range(self.count)]

    def start_all(self) -> None:
        for index in range(self.count):
            self.start(index)

    def start(self, index: int) -> None:
        state = self.workers[index]
        state.incarnation += 1
        state.last_seen, state.heard = time.monotonic(), False
        state.busy, state.error, state.running = False, None, True
        self.transport.start_worker(index, worker_seed(self.run_seed, index, state.incarnation,
                                                self.updates))

    def heard_from(self, index: int, started_up: bool = True) -> None:
        """Worker `index` said something; `started_up=False` for its first "ready"."""
        state = self.workers[index]
        state.last_seen = time.monotonic()
        state.heard = state.heard or started_up

    def check(self, on_restart=None, say=None) -> None:
        """Restart every worker that exited or went silent; past the budget, fail.

        `on_restart(index, why)` runs before the restart (release what a killed worker
        held); `say(line)` tells the user.
        """
        now = self.checked_at = time.monotonic()
        for index, state in enumerate(self.workers):
            why = self._trouble(index, state, now) if state.running else None
            if why is not None:
                self.restart(index, why, on_restart, say)

    def check_due(self, interval: float = 1.0) -> bool:
        """Whether `interval` seconds have passed since the last `check()`. A transport
        whose results keep arriving asks this before each one, so that one silent worker
        among busy ones is still replaced after `run.worker_timeout`."""
        return time.monotonic() - self.checked_at >= interval

    def _trouble(self, index: int, state: WorkerState, now: float) -> str | None:
        code = self.transport.exit_code(index)
        limit = self.timeout if state.heard else max(self.timeout, STARTUP_GRACE)
        if code is not None:
            why = f"exited with code {code}"
        elif now - max(state.last_seen, _continued_at) > limit and not state.busy:
            why = f"sent no heartbeat for {limit:g}s (run.worker_timeout={self.timeout:g})"
        else:
            return None
        return why + (f" ({state.error})" if state.error else "")

    def restart(self, index: int, why: str, on_restart=None, say=None) -> None:
        """Replace worker `index` with a fresh incarnation, or fail once the budget is spent."""
        name = self.names[index]
        self.transport.stop_worker(index)
        if self.restarts >= self.max_restarts:
            raise WorkerFailure(f"{name} {why}; the restart limit run.max_worker_restarts="
                                f"{self.max_restarts} is used up, so the run stops (a final "
                                f"checkpoint is written)")
        self.restarts += 1
        if say is not None:
            say(f"{name} {why}: restarting it ({self.restarts}/{self.max_restarts} restarts)")
        if on_restart is not None:
            on_restart(index, why)
        self.start(index)

    def stop_all(self) -> None:
        for index, state in enumerate(self.workers):
            state.running = False
            self.transport.stop_worker(index)


# ---------------------------------------------------------------- local processes

@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """A process started inside this block ignores Ctrl-C from its first instruction."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


# What the fork server imports once, so that a worker it forks starts with them loaded:
# torch (about a second of CPU), torch._dynamo (another: torch.optim imports it on first
# use) and the modules whose functions the workers run.
WORKER_MODULES = ["torch", "torch._dynamo", "actorcritic.samplers.a3c_workers",
                  "actorcritic.samplers.actors", "actorcritic.samplers.processes"]


def process_context():
    """The multiprocessing context every local worker process starts in.

    "forkserver" (Python 3.14's default on Linux): a clean server process, started on first
    use, imports `WORKER_MODULES` once and forks each worker from itself. A worker then pays
    none of the imports of a "spawn" start (about 2 s of CPU each: torch 1.0 s,
    torch._dynamo 0.9 s, the package 0.15 s; at a run's start, every restart, every test
    that starts workers). Like "spawn", and
    unlike a plain fork of a process that runs threads, a worker inherits no thread and no
    lock of the main process; its arguments arrive pickled and shared tensors as shared
    memory. The server is started with Ctrl-C ignored, which the workers it forks inherit
    from their first instruction. Where there is no fork server (Windows), "spawn".
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(WORKER_MODULES)
    with sigint_ignored():
        forkserver.ensure_running()
    return ctx


def main_process_alive() -> bool:
    """In a worker process: the process that started it still runs (a worker whose main
    process was killed stops instead of training on alone). Its parent is the fork server,
    so this watches the main process itself, through multiprocessing's sentinel."""
    parent = multiprocessing.parent_process()
    return parent is None or parent.is_alive()


def start_process(ctx, target, args: tuple, name: str, daemon: bool = False):
    proc = ctx.Process(target=target, args=args, name=name, daemon=daemon)
    with sigint_ignored():
        proc.start()
    return proc


def reap_process(proc, grace: float = 0.0) -> None:
    """End a process for good: wait `grace` seconds, then SIGTERM, then SIGKILL (a hung or
    SIGSTOPped process only ends with SIGKILL)."""
    if proc is None:
        return
    if proc.exitcode is None and grace > 0:
        proc.join(grace)
    if proc.exitcode is None:
        proc.terminate()
        proc.join(2.0)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
