"""The throughput benchmark behind issue 4's figures still runs and prints every row.

Timings are not asserted (a shared 2-core machine is too noisy for that); the benchmark
itself measures them. This only keeps `benchmarks/atari_throughput.py` from rotting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_atari_throughput_prints_a_row_for_every_layout():
    out = subprocess.run(
        [sys.executable, "benchmarks/atari_throughput.py", "--seconds", "0.2", "--rounds", "1",
         "--no-sb3", "--no-train", "--processes", "2", "--bfloat16"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split("  ")[0].strip(): line for line in out.stdout.splitlines()
            if line[:1].isalpha() and "%" in line}
    for name in ("ours", "ceiling", "ours, 2 processes", "ceiling, 2 processes",
                 "ours, bfloat16", "ceiling, bfloat16", "ours, 2 processes, bfloat16",
                 "ceiling, 2 processes, bfloat16", "emulators alone"):
        assert name in rows, f"no row {name!r} in:\n{out.stdout}"
    # Every ours row is set against its own ceiling and against the packed bound.
    for name in ("ours", "ours, 2 processes", "ours, bfloat16", "ours, 2 processes, bfloat16"):
        assert rows[name].count("%") == 4, rows[name]
