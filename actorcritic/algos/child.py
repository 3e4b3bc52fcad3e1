"""What every worker process does first and last: ignore Ctrl-C (the main process decides
what it means), name itself, one torch thread, its seed; and report an error to the main
process in one envelope."""

from __future__ import annotations

import signal
import traceback

import torch

from actorcritic.errors import NonFiniteError, UserError


def child_setup(name: str, seed: int | None) -> None:
    # The main process decides what a Ctrl-C means (it also reaches the children, who share
    # the terminal's process group); SIGTERM keeps its default so terminate() works.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_process_name(name)
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


def report_error(conn, who: str, exc: BaseException) -> None:
    payload = exc if isinstance(exc, (UserError, NonFiniteError)) else None
    try:
        conn.send(("error", f"{who}: {type(exc).__name__}: {exc}", payload,
                   traceback.format_exc()))
    except Exception:  # the pipe may be gone; the exit code still tells the main process
        pass
