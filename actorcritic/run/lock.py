"""A run directory belongs to one live process: an exclusive lock on RUN_DIR/.lock.

The lock is `flock` on an open file, so the kernel drops it when its process dies: a
run killed with SIGKILL leaves the file behind but never blocks `--resume`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from actorcritic.errors import RunDirError

LOCK_FILE = ".lock"


class RunDirLock:
    """Held from before anything is written to the run dir until the session closes."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunDirLock:
        while True:  # the file may be unlinked by its holder between our open and flock
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunDirError(f"run dir {self.path.parent} is in use by another "
                                  f"actorcritic process (pid {holder}); wait for it to end, "
                                  f"or choose another --run-dir") from None
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"run dir {self.path.parent} cannot be written: "
                              f"{exc.strerror}") from None

    def release(self) -> None:
        """Remove the lock file and drop the lock (a run that ends leaves no trace)."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None
