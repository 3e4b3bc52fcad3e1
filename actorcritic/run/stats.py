"""Pure statistics for results over seeds: IQM, percentile bootstrap, rolling means and
curves on a common env-step grid. NumPy only; no files, no plotting.

IQM (interquartile mean) is the mean of the middle 50% of the scores. With n scores sorted,
score i covers [i, i+1) of [0, n); the middle 50% is [n/4, 3n/4), and each score weighs
by how much of it falls inside, so the two boundary scores count fractionally when n is
not a multiple of 4. For n a multiple of 4 this is rliable's `aggregate_iqm` (SciPy's
`trim_mean(x, 0.25)`); for n = 3 it is (x1/4 + x2 + x3/4) / 1.5, where trim_mean would
trim nothing and return the plain mean.

The confidence interval is rliable's percentile bootstrap over runs: draw `resamples`
sets of n runs with replacement (one NumPy Generator, `seed`), compute the statistic of
each set, take the 2.5 and 97.5 percentiles (NumPy's linear interpolation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

STATS = ("mean", "iqm")
RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def iqm_weights(n: int) -> np.ndarray:
    """Weight of each sorted score in the IQM; they sum to 1."""
    if n < 1:
        raise ValueError("the IQM of no scores is undefined")
    lo, hi = n / 4, 3 * n / 4
    edges = np.arange(n + 1, dtype=float)
    covered = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None)
    return covered / (hi - lo)


def iqm(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile mean along `axis` (see the module docstring)."""
    values = np.sort(np.asarray(values, dtype=float), axis=axis)
    weights = iqm_weights(values.shape[axis])
    return np.tensordot(np.moveaxis(values, axis, -1), weights, axes=([-1], [0]))


def aggregate(values: np.ndarray, stat: str, axis: int = 0) -> np.ndarray:
    """`stat` ('mean' or 'iqm') of `values` along `axis`."""
    if stat == "mean":
        return np.mean(np.asarray(values, dtype=float), axis=axis)
    if stat == "iqm":
        return iqm(values, axis=axis)
    raise ValueError(f"unknown statistic {stat!r}; use one of {STATS}")


def bootstrap_ci(values: np.ndarray, stat: str = "iqm", resamples: int = RESAMPLES,
                 seed: int = BOOTSTRAP_SEED, level: float = 0.95,
                 chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of `stat` over axis 0 (the runs): values [n] or [n, ...].

    Every resample draws n run indices with replacement; all later axes (grid points of a
    curve) use the same draws, as rliable resamples whole runs.
    """
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    stats = np.concatenate([aggregate(values[idx[i:i + chunk]], stat, axis=1)
                            for i in range(0, resamples, chunk)])
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(stats, [tail, 100 - tail], axis=0)
    return lo, hi


def rolling(values: np.ndarray, window: int, fn: Callable = np.mean) -> np.ndarray:
    """Trailing window: out[i] = fn(values[max(0, i - window + 1): i + 1]); `fn` takes
    `axis` (np.mean, np.median)."""
    values = np.asarray(values, dtype=float)
    if window < 1:
        raise ValueError("window must be at least 1")
    head = [fn(values[: i + 1]) for i in range(min(window - 1, len(values)))]
    if len(values) < window:
        return np.array(head, dtype=float)
    full = fn(np.lib.stride_tricks.sliding_window_view(values, window), axis=1)
    return np.concatenate([np.array(head, dtype=float), full])


def common_grid(step_arrays: Sequence[np.ndarray], points: int = 200) -> np.ndarray | None:
    """`points` env steps, evenly spaced over the range every run reached: from the latest
    first episode to the earliest last episode. None when the runs do not overlap."""
    start = max(float(s[0]) for s in step_arrays)
    end = min(float(s[-1]) for s in step_arrays)
    if start > end:
        return None
    return np.linspace(start, end, points) if end > start else np.array([start])


def value_at(steps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The value as of each grid step: that of the last episode finished at or before it
    (a step function, no interpolation between episodes); NaN before the first one.
    `steps` is sorted."""
    idx = np.searchsorted(steps, grid, side="right") - 1
    out = np.asarray(values, dtype=float)[np.clip(idx, 0, None)]
    return np.where(idx >= 0, out, np.nan)


def sample_std(values: Sequence[float]) -> float | None:
    """Standard deviation with n - 1 (spread across seeds); None for fewer than 2."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None
