"""`actorcritic plot`: episode return, mean and median of the last 100 against env steps."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from actorcritic.errors import UserError


def read_episodes(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    path = Path(run_dir) / "episodes.csv"
    if not path.is_file():
        raise UserError(f"{run_dir} has no episodes.csv (is it a run directory?)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    steps = np.array([float(r["env_steps"]) for r in rows])
    returns = np.array([float(r["return"]) for r in rows])
    order = np.argsort(steps, kind="stable")
    return steps[order], returns[order]


def rolling(values: np.ndarray, window: int, fn) -> np.ndarray:
    return np.array([fn(values[max(0, i - window + 1): i + 1]) for i in range(len(values))])


def plot_runs(run_dirs: list[Path], out: Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), sharex=True)
    for run_dir in run_dirs:
        steps, returns = read_episodes(run_dir)
        label = Path(run_dir).name
        if len(returns) == 0:
            continue
        axes[0].plot(steps, returns, lw=0.6, alpha=0.7, label=label)
        axes[1].plot(steps, rolling(returns, 100, np.mean), lw=1.5, label=label)
        axes[2].plot(steps, rolling(returns, 100, np.median), lw=1.5, label=label)
    for ax, name in zip(axes, ["episode return", "mean of last 100", "median of last 100"]):
        ax.set_title(name)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("return (raw score)")
    axes[2].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
