"""Run logging: TensorBoard events in RUN_DIR/tb, the same scalars in RUN_DIR/metrics.csv,
and one row per finished episode in RUN_DIR/episodes.csv (what `actorcritic plot` reads)."""

from __future__ import annotations

import csv
import statistics
from collections import deque
from pathlib import Path

from actorcritic.envs.vector import Episode

SCALARS = [
    "charts/episode_return", "charts/episode_length", "charts/mean_return_100",
    "charts/median_return_100", "charts/sps", "charts/lr",
    "losses/policy", "losses/value", "losses/entropy", "losses/total",
    "diag/explained_variance", "diag/grad_norm", "diag/grad_max", "diag/grad_var",
    "diag/advantage_mean", "diag/advantage_std", "diag/value_mean", "diag/value_target_mean",
    "eval/mean_return", "charts/win_rate_100", "diag/policy_lag",
    "losses/approx_kl", "losses/clipfrac", "diag/ppo_epochs", "diag/ppo_minibatch_steps",
    "diag/clip_coef",
    # SAC and TD3
    "losses/critic", "losses/actor", "losses/alpha", "charts/alpha", "diag/q_mean",
    "replay/size",
]
# win: 1/0 where the env reports one (football), else empty; scenario: the task the
# episode played where the env has several (football), else empty. Files from before these
# columns read the same (readers use .get); a resumed run rewrites their header
# (_truncate_csv).
EPISODE_COLUMNS = ["env_steps", "wall_seconds", "return", "length", "worker", "win",
                   "scenario"]


def scenario_columns(scenarios: tuple[str, ...]) -> list[str]:
    """The per-scenario charts of a run over several scenarios: the win rate and the mean
    return (the goal difference, for football) of each scenario's last 100 training
    episodes, and of its games in the last evaluation."""
    return [f"scenario/{s}/{stat}" for s in scenarios
            for stat in ("win_rate_100", "return_100", "eval_win_rate", "eval_return")]


class ReturnWindow:
    """The last `size` episodes: returns, lengths and (where the env reports it) wins."""

    def __init__(self, size: int = 100):
        self.returns: deque[float] = deque(maxlen=size)
        self.lengths: deque[int] = deque(maxlen=size)
        self.wins: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, ep: Episode) -> None:
        self.returns.append(ep.ret)
        self.lengths.append(ep.length)
        if "win" in ep.extras:
            self.wins.append(ep.extras["win"])
        self.count += 1

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.returns) if self.returns else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.returns) if self.returns else None

    @property
    def win_rate(self) -> float | None:
        return statistics.fmean(self.wins) if self.wins else None

    def to_json(self) -> dict:
        return {"returns": list(self.returns), "lengths": list(self.lengths),
                "wins": list(self.wins), "count": self.count}

    def load_json(self, data: dict) -> None:
        self.returns.extend(data["returns"])
        self.lengths.extend(data["lengths"])
        self.wins.extend(data.get("wins", []))
        self.count = data["count"]


class ScenarioWindows:
    """A `ReturnWindow` per scenario, for runs over several (football's scenario mix)."""

    def __init__(self, scenarios: tuple[str, ...], size: int = 100):
        self.windows = {s: ReturnWindow(size) for s in scenarios}

    def add(self, ep: Episode) -> None:
        if ep.scenario in self.windows:
            self.windows[ep.scenario].add(ep)

    def charts(self) -> dict[str, float | None]:
        out = {}
        for s, w in self.windows.items():
            out[f"scenario/{s}/win_rate_100"] = w.win_rate
            out[f"scenario/{s}/return_100"] = w.mean
        return out

    def summary(self) -> dict[str, dict]:
        return {s: {"episodes": w.count, "win_rate_100": w.win_rate, "return_100": w.mean}
                for s, w in self.windows.items()}

    def to_json(self) -> dict:
        return {s: w.to_json() for s, w in self.windows.items()}

    def load_json(self, data: dict) -> None:
        for s, w in data.items():
            if s in self.windows:
                self.windows[s].load_json(w)


class RunLogger:
    def __init__(self, run_dir: Path, resume_step: int | None = None,
                 scenarios: tuple[str, ...] = ()):
        from torch.utils.tensorboard import SummaryWriter

        run_dir = Path(run_dir)
        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=resume_step)
        self._metrics_path = run_dir / "metrics.csv"
        self._episodes_path = run_dir / "episodes.csv"
        self._columns = SCALARS + scenario_columns(scenarios)
        metric_columns = ["env_steps", "wall_seconds"] + self._columns
        if resume_step is not None:
            _truncate_csv(self._metrics_path, resume_step, metric_columns)
            _truncate_csv(self._episodes_path, resume_step, EPISODE_COLUMNS)
        self._metrics = _open_csv(self._metrics_path, metric_columns)
        self._episodes = _open_csv(self._episodes_path, EPISODE_COLUMNS)

    def episode(self, env_steps: int, wall: float, ep: Episode, worker: int = 0) -> None:
        """One row per episode in episodes.csv; TensorBoard gets the interval's mean (the
        session passes it to `scalars`), since one event per episode costs more than a
        CartPole step."""
        self._episodes[1].writerow([env_steps, f"{wall:.3f}", ep.ret, ep.length, worker,
                                    _fmt(ep.extras.get("win")), ep.scenario])

    def scalars(self, env_steps: int, wall: float, values: dict[str, float]) -> None:
        for key, value in values.items():
            if value is not None:
                self.tb.add_scalar(key, float(value), env_steps)
        row = [env_steps, f"{wall:.3f}"] + [_fmt(values.get(k)) for k in self._columns]
        self._metrics[1].writerow(row)
        self.flush()

    def flush(self) -> None:
        self.tb.flush()
        self._metrics[0].flush()
        self._episodes[0].flush()

    def close(self) -> None:
        self.tb.close()
        self._metrics[0].close()
        self._episodes[0].close()


def _fmt(value) -> str:
    return "" if value is None else f"{float(value):.6g}"


def _open_csv(path: Path, columns: list[str]):
    new = not path.exists() or path.stat().st_size == 0
    fh = open(path, "a", newline="")
    writer = csv.writer(fh)
    if new:
        writer.writerow(columns)
    return fh, writer


def _truncate_csv(path: Path, env_steps: int, columns: list[str]) -> None:
    """Drop rows logged after the checkpoint a resumed run restarts from. A file written
    with fewer columns (an older version) gets the new header, its rows the new columns
    (empty where it had none), so appended rows line up."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    header, body = rows[0], [r for r in rows[1:] if r and int(float(r[0])) <= env_steps]
    if header != columns and set(header) <= set(columns):
        body = [[dict(zip(header, r)).get(c, "") for c in columns] for r in body]
        header = columns
    kept = [header] + body
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(kept)
