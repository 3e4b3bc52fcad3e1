"""Shared helpers for the benchmark scripts: tables and Stable-Baselines3 setup."""

from __future__ import annotations

import platform
import time

import torch


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"torch {torch.__version__}"


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(x).ljust(w) for x, w in zip(row, widths)) + " |")


def require_sb3():
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        raise SystemExit("this benchmark compares with Stable-Baselines3: "
                         "pip install -e '.[bench]'") from None


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
