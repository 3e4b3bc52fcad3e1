"""`actorcritic plot`: episode returns against env steps, per run or aggregated over seeds.

Per run: the raw returns (dots) with a rolling mean over `smooth` episodes, the mean and
median of the last 100, and, where episodes.csv has a win flag (football), the win rate
of the last 100. `--aggregate`: per group of runs (see actorcritic.run.report), the mean
or IQM across seeds of the mean-of-last-100 curve, with a 95% percentile-bootstrap band
over seeds, on a grid covering only the env steps every run of the group reached.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actorcritic.errors import RunDirError
from actorcritic.run import stats
from actorcritic.run.report import group_runs, load_runs

WINDOW = 100


@dataclass
class Episodes:
    steps: np.ndarray    # env steps when each episode ended, sorted
    returns: np.ndarray
    wins: np.ndarray     # 1/0, NaN where the episode has no win flag (or the file no column)
    scenarios: np.ndarray  # the scenario each episode played; "" where the env has one task

    def scenario_win_curves(self, window: int = WINDOW
                            ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Runs over several scenarios: each scenario's win rate over its last `window`
        episodes, at the env steps its episodes ended."""
        names = [s for s in dict.fromkeys(self.scenarios.tolist()) if s]
        if len(names) < 2:
            return {}
        out = {}
        for name in names:
            mine = (self.scenarios == name) & ~np.isnan(self.wins)
            if mine.any():
                out[name] = (self.steps[mine], stats.rolling(self.wins[mine], window))
        return out

    def win_curve(self, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray] | None:
        has = ~np.isnan(self.wins)
        if not has.any():
            return None
        return self.steps[has], stats.rolling(self.wins[has], window)

    def mean_curve(self, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
        return self.steps, stats.rolling(self.returns, window)


def read_episodes(run_dir: Path) -> Episodes:
    path = Path(run_dir) / "episodes.csv"
    if not path.is_file():
        raise RunDirError(f"{run_dir} has no episodes.csv (is it a run directory?)")
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        steps = np.array([float(r["env_steps"]) for r in rows])
        returns = np.array([float(r["return"]) for r in rows])
        wins = np.array([float(r.get("win") or "nan") for r in rows])
        scenarios = np.array([r.get("scenario") or "" for r in rows], dtype=object)
    except (KeyError, ValueError, TypeError) as exc:
        raise RunDirError(f"{path} is not an episodes log ({type(exc).__name__}: "
                          f"{exc})") from None
    order = np.argsort(steps, kind="stable")
    return Episodes(steps[order], returns[order], wins[order], scenarios[order])


def aggregate_curves(curves: list[tuple[np.ndarray, np.ndarray]], stat: str = "mean",
                     resamples: int = stats.RESAMPLES, points: int = 200
                     ) -> tuple[np.ndarray, ...] | None:
    """Curves (steps, values) of the seeds of one group -> (grid, per-seed values [n, G],
    center, band low, band high), or None when the runs share no env steps."""
    grid = stats.common_grid([s for s, _ in curves], points)
    if grid is None:
        return None
    values = np.stack([stats.value_at(s, v, grid) for s, v in curves])
    lo, hi = stats.bootstrap_ci(values, stat, resamples)
    return grid, values, stats.aggregate(values, stat), lo, hi


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, axes, out: Path, title: str | None) -> Path:
    for ax in axes:
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def auto_smooth(episodes: int) -> int:
    """The default window over raw returns: 1/40 of the episodes, between 10 and 100."""
    return min(WINDOW, max(10, episodes // 40))


def plot_runs(run_dirs: list[Path], out: Path, title: str | None = None,
              smooth: int | None = None) -> Path:
    """One line per run in each panel; a fourth panel (win rate) where runs have wins.
    `smooth`: episodes in the rolling mean over the raw returns (default auto_smooth)."""
    runs = [(Path(d).name, read_episodes(d)) for d in run_dirs]
    wins = any(ep.win_curve() is not None for _, ep in runs)
    mixes = any(ep.scenario_win_curves() for _, ep in runs)
    smooth = smooth or auto_smooth(max(len(ep.returns) for _, ep in runs))
    plt = _pyplot()
    panels = 3 + wins + mixes
    fig, axes = plt.subplots(1, panels, figsize=(16 + 5 * (panels - 3), 4.5), sharex=True)
    for i, (label, ep) in enumerate(runs):
        if len(ep.returns) == 0:
            continue
        color = f"C{i % 10}"
        axes[0].plot(ep.steps, ep.returns, ".", ms=2, alpha=0.2, color=color)
        axes[0].plot(ep.steps, stats.rolling(ep.returns, smooth), lw=1.4, color=color,
                     label=label, zorder=3)
        axes[1].plot(*ep.mean_curve(), lw=1.5, color=color, label=label)
        axes[2].plot(ep.steps, stats.rolling(ep.returns, WINDOW, np.median), lw=1.5,
                     color=color, label=label)
        if ep.win_curve() is not None:
            axes[3].plot(*ep.win_curve(), lw=1.5, color=color, label=label)
    if mixes:
        _scenario_panel(axes[4], runs)
    names = [f"episode return (dots) and mean of {smooth}", "mean of last 100",
             "median of last 100", "win rate of last 100",
             "win rate of each scenario's last 100"]
    for ax, name in zip(axes, names):
        ax.set_title(name)
    axes[0].set_ylabel("return (raw score)")
    for ax in axes[3:]:
        ax.set_ylim(-0.02, 1.02)
    path = _finish(fig, axes, out, title)
    plt.close(fig)
    return path


def _scenario_panel(ax, runs: list[tuple[str, Episodes]]) -> None:
    """A line per scenario (colour) and run (line style)."""
    names = list(dict.fromkeys(n for _, ep in runs for n in ep.scenario_win_curves()))
    for r, (label, ep) in enumerate(runs):
        for name, curve in ep.scenario_win_curves().items():
            tag = name if len(runs) == 1 else f"{label}: {name}"
            ax.plot(*curve, lw=1.3, color=f"C{names.index(name) % 10}",
                    ls=("-", "--", ":", "-.")[r % 4], label=tag)


def plot_aggregate(run_dirs: list[Path], out: Path, title: str | None = None,
                   stat: str = "mean", group_by: str = "config",
                   resamples: int = stats.RESAMPLES, points: int = 200) -> Path:
    """Per group: `stat` across seeds of the mean-of-last-100 curve (and of the win rate,
    where runs have wins) with a 95% bootstrap band; thin lines are the single seeds."""
    groups = group_runs(load_runs(run_dirs), group_by)
    episodes = {id(r): read_episodes(r.path) for g in groups for r in g.runs}
    for g in groups:
        for r in g.runs:
            if len(episodes[id(r)].steps) == 0:
                raise RunDirError(f"{r.path} has no finished episodes yet; nothing to "
                                  f"aggregate")
    wins = any(episodes[id(r)].win_curve() is not None for g in groups for r in g.runs)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if wins else 1, figsize=(15 if wins else 8, 5),
                             squeeze=False, sharex=True)
    axes = list(axes[0])
    panels = [("mean_curve", "mean of last 100 episodes")]
    if wins:
        panels.append(("win_curve", "win rate of last 100 episodes"))
    for ax, (curve, name) in zip(axes, panels):
        for i, g in enumerate(groups):
            curves = [getattr(episodes[id(r)], curve)() for r in g.runs]
            if any(c is None for c in curves):
                continue
            _draw_group(ax, g.label, curves, f"C{i % 10}", stat, resamples, points)
        ax.set_title(f"{name}: {'IQM' if stat == 'iqm' else 'mean'} across seeds, "
                     f"95% bootstrap CI", fontsize=10)
    axes[0].set_ylabel("return (raw score)")
    path = _finish(fig, axes, out, title)
    plt.close(fig)
    return path


def _draw_group(ax, label: str, curves, color: str, stat: str, resamples: int,
                points: int) -> None:
    result = aggregate_curves(curves, stat, resamples, points)
    if result is None:
        raise RunDirError(f"the runs of {label} share no env steps (one ends before "
                          f"another's first episode); plot them without --aggregate")
    grid, values, center, lo, hi = result
    for v in values:
        ax.plot(grid, v, lw=0.5, alpha=0.35, color=color)
    ax.plot(grid, center, lw=2, color=color, label=f"{label} ({len(curves)} seeds)")
    ax.fill_between(grid, lo, hi, color=color, alpha=0.2, lw=0)
