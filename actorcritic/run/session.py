"""A training run's shared machinery, used by every algorithm's driver.

The driver (A2C, A3C, IMPALA) only decides how experience turns into updates. The session
owns the run directory, counters, episode statistics, logging, progress, stop conditions,
signal handling, checkpoints, evaluation and the final summary.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from actorcritic.config import Config, config_from_dict
from actorcritic.envs.football_scenarios import mix_scenarios
from actorcritic.envs.vector import Episode
from actorcritic.errors import ConfigError, RunDirError
from actorcritic.run.checkpoint import Checkpoint, CheckpointDir, write_atomic
from actorcritic.run.lock import LOCK_FILE, RunDirLock
from actorcritic.run.logger import ReturnWindow, RunLogger, ScenarioWindows
from actorcritic.run.progress import Progress

# Keys a resumed run may not change: they change tensor shapes or the experience stream.
FROZEN_ON_RESUME = ("env.", "model.", "algo.name", "algo.optimizer", "algo.num_steps",
                    "algo.num_workers", "run.seed", "run.backend")
FREE_ON_RESUME = ("env.num_threads", "model.precision")  # how fast, not what is learned


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device=cuda but no CUDA device is available; use run.device=cpu")
    return torch.device(name)


def default_run_dir(cfg: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.preset or 'run'}-{stamp}"


def prepare_run_dir(run_dir: Path, overwrite: bool) -> RunDirLock:
    """Create a fresh run dir and lock it; an existing non-empty one needs --overwrite.

    The lock comes first, so of two runs started on one dir at once, one is refused."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run dir {run_dir} exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"run dir {run_dir} cannot be written: {exc.strerror}") from None
    lock = RunDirLock(run_dir).acquire()
    try:
        contents = [p for p in run_dir.iterdir() if p.name != LOCK_FILE]
        if contents and not overwrite:
            raise RunDirError(f"run dir {run_dir} already exists; pass --overwrite to replace "
                              f"it or --resume {run_dir} to continue it")
        if contents and not (run_dir / "config.yaml").is_file():
            raise RunDirError(f"run dir {run_dir} is not empty and is not a run (no "
                              f"config.yaml); --overwrite only replaces run dirs, so choose "
                              f"another --run-dir")
        import shutil

        for child in contents:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    except BaseException:
        lock.release()
        raise
    return lock


def load_run_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not Path(run_dir).is_dir():
        raise RunDirError(f"cannot resume {run_dir}: no such directory")
    if not path.is_file():
        raise RunDirError(f"cannot resume {run_dir}: it has no config.yaml (not a run dir?)")
    return config_from_dict(yaml.safe_load(path.read_text()) or {})


def check_resume_compatible(saved: Config, new: Config, run_dir: Path) -> None:
    old_flat, new_flat = _flatten(saved.to_dict()), _flatten(new.to_dict())
    for key, value in new_flat.items():
        if key.startswith(FROZEN_ON_RESUME) and key not in FREE_ON_RESUME \
                and old_flat.get(key) != value:
            raise ConfigError(f"cannot resume {run_dir}: {key} was {old_flat.get(key)!r} in "
                              f"that run and is {value!r} now; it cannot change on resume")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and prefix == "":
            out.update(_flatten(value, f"{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class RunSession:
    """Everything a run keeps besides its model, sampler and learner. Algorithms read it and
    call its methods; none assigns its attributes (scripts/check_structure.py)."""

    def __init__(self, cfg: Config, run_dir: Path, device: torch.device | None = None, *,
                 resume: Checkpoint | None = None, quiet: bool = False,
                 lock: RunDirLock | None = None, init_from: dict | None = None):
        self.cfg = cfg
        # where the weights started (training.lineage), kept through resumes
        self.init_from = resume.meta.get("init_from") if resume is not None else init_from
        self.lock = lock  # released by close()
        self.run_dir = Path(run_dir)
        self.device = device if device is not None else resolve_device(cfg.run.device)
        self.checkpoints = CheckpointDir(self.run_dir, cfg.run.keep_checkpoints)
        self.window = ReturnWindow(100)
        self.scenario_windows = ScenarioWindows(mix_scenarios(cfg.env.id))
        self.env_steps = 0
        self.updates = 0
        self.prior_wall = 0.0
        self.best_score: float | None = None
        self.last_eval: dict | None = None
        self._fresh_eval = False  # last_eval not yet considered for the best checkpoint
        self.eval_seconds = 0.0  # wall time spent in evaluations during training
        self.next_eval = cfg.run.eval_every
        self.stop_reason: str | None = None
        self._pending: list[Episode] = []  # finished since the last log line
        self.stop_requested: str | None = None
        self.checkpoint: Callable[..., None] | None = None  # set by the training loop
        if resume is not None:
            c = resume.meta["counters"]
            self.env_steps, self.updates = c["env_steps"], c["updates"]
            self.prior_wall = c["wall_seconds"]
            self.best_score = resume.meta.get("best_score")
            self.next_eval = resume.meta.get("next_eval", self.next_eval)
            self.window.load_json(resume.meta["window"])
            self.scenario_windows.load_json(resume.meta.get("scenario_windows", {}))
        self._start = time.monotonic()
        self._sps_mark = (self._start, self.env_steps)
        self.sps = 0.0
        self.logger = RunLogger(self.run_dir, resume_step=self.env_steps if resume else None,
                                scenarios=tuple(self.scenario_windows.windows))
        self.progress = Progress(cfg.run.total_steps, quiet=quiet, start=self.env_steps)
        self._old_handlers: dict[int, Any] = {}
        write_atomic(self.run_dir / "config.yaml", cfg.to_yaml().encode())

    # ------------------------------------------------------------ time and counters

    @property
    def wall_seconds(self) -> float:
        return self.prior_wall + time.monotonic() - self._start

    def add_steps(self, steps: int, updates: int = 1) -> None:
        self.env_steps += steps
        self.updates += updates

    def set_counts(self, env_steps: int, updates: int) -> None:
        """The counts of workers that keep their own (A3C's shared counters, read at the
        end: the updates applied while their messages were on the way count too)."""
        self.env_steps, self.updates = env_steps, updates

    def record_episodes(self, episodes: list[Episode], worker: int = 0) -> None:
        wall = self.wall_seconds
        for ep in episodes:
            self.window.add(ep)
            self.scenario_windows.add(ep)
            self.logger.episode(self.env_steps, wall, ep, worker)
        self._pending.extend(episodes)

    def update_sps(self) -> float:
        now = time.monotonic()
        t0, s0 = self._sps_mark
        if now - t0 > 0:
            self.sps = (self.env_steps - s0) / (now - t0)
        self._sps_mark = (now, self.env_steps)
        return self.sps

    def log(self, values: dict[str, Any]) -> None:
        """Log scalars (tensors are fine) with the episode-window charts added."""
        sps = self.update_sps()
        row = {k: (float(v) if v is not None else None) for k, v in values.items()}
        row.update({"charts/sps": sps, "charts/mean_return_100": self.window.mean,
                    "charts/median_return_100": self.window.median,
                    "charts/win_rate_100": self.window.win_rate})
        row.update(self.scenario_windows.charts())
        if self._pending:  # the episodes that finished since the last log line
            n = len(self._pending)
            row["charts/episode_return"] = sum(e.ret for e in self._pending) / n
            row["charts/episode_length"] = sum(e.length for e in self._pending) / n
            for key in self._pending[-1].extras:
                row[f"charts/{key}"] = sum(e.extras.get(key, 0.0) for e in self._pending) / n
            self._pending.clear()
        self.logger.scalars(self.env_steps, self.wall_seconds, row)
        extra = "" if self.window.win_rate is None else f" win100={self.window.win_rate:.2f}"
        self.progress.update(self.env_steps, sps, self.window.mean, extra)

    # ------------------------------------------------------------ stopping

    def should_stop(self) -> bool:
        r = self.cfg.run
        if self.stop_requested:
            self.stop_reason = self.stop_requested
        elif self.env_steps >= r.total_steps:
            self.stop_reason = "total_steps"
        elif r.stop_mean_return is not None and len(self.window.returns) >= 10 and \
                self.window.mean >= r.stop_mean_return:
            self.stop_reason = "stop_mean_return"
        elif r.stop_eval_return is not None and self.last_eval is not None and \
                self.last_eval["mean_return"] >= r.stop_eval_return:
            self.stop_reason = "stop_eval_return"
        elif r.max_episodes and self.window.count >= r.max_episodes:
            self.stop_reason = "max_episodes"
        elif r.max_wall_seconds and self.wall_seconds >= r.max_wall_seconds:
            self.stop_reason = "max_wall_seconds"
        return self.stop_reason is not None

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM ask the loop to stop after the current update (a second one
        interrupts at once)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            name = signal.Signals(signum).name
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = name
            self.progress.message(f"{name} received: finishing the update, writing a final "
                                  f"checkpoint (send again to abort at once)")

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, handler)

    def restore_signal_handlers(self) -> None:
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers.clear()

    # ------------------------------------------------------------ checkpoints

    def checkpoint_meta(self, extra: dict | None = None) -> dict:
        meta = {
            "config": self.cfg.to_dict(),
            "counters": {"env_steps": self.env_steps, "updates": self.updates,
                         "episodes": self.window.count, "wall_seconds": self.wall_seconds},
            "window": self.window.to_json(),
            "scenario_windows": self.scenario_windows.to_json(),
            "best_score": self.best_score,
            "next_eval": self.next_eval,
        }
        if self.init_from:
            meta["init_from"] = self.init_from
        meta.update(extra or {})
        return meta

    def save(self, name: str, tensors: dict[str, torch.Tensor], extra_meta: dict | None = None):
        return self.checkpoints.save(name, tensors, self.checkpoint_meta(extra_meta))

    def periodic_due(self) -> bool:
        every = self.cfg.run.checkpoint_every
        return bool(every) and self.updates % every == 0

    def evaluated(self, result: dict, steps: int | None = None,
                  model_snapshot: dict[str, torch.Tensor] | None = None) -> None:
        """An evaluation's result, of the current parameters or (A3C's evaluator) of a
        snapshot taken at `steps`: recorded for the stop condition, logged, and kept as the
        best checkpoint, with the parameters that were played, when it scores highest."""
        self.last_eval = result
        self._fresh_eval = True
        values = {"eval/mean_return": result["mean_return"]}
        for s, r in result.get("scenarios", {}).items():
            values.update({f"scenario/{s}/eval_win_rate": r.get("win_rate"),
                           f"scenario/{s}/eval_return": r["mean_return"]})
        self.logger.scalars(self.env_steps if steps is None else steps, self.wall_seconds,
                            values)
        if self.improved():
            self.checkpoint("best", model_snapshot)

    def improved(self) -> bool:
        """Whether the parameters just evaluated (or, in runs without evaluations, the
        current ones) should replace the best checkpoint.

        A new evaluation counts once, when it arrives; ties replace, since of equally
        scoring snapshots the latest is the more trained one. Without evaluations the mean
        of the last 100 training episodes must strictly improve.
        """
        if self.last_eval is not None:
            if not self._fresh_eval:
                return False
            self._fresh_eval = False
            score = self.last_eval["mean_return"]
            if self.best_score is not None and score < self.best_score:
                return False
        else:
            if len(self.window.returns) < 10:
                return False
            score = self.window.mean
            if self.best_score is not None and score <= self.best_score:
                return False
        self.best_score = score
        return True

    def end_of_update(self, model: torch.nn.Module, logged: bool,
                      evaluate: Callable[[torch.nn.Module], None] | None = None) -> None:
        """After an update: periodic checkpoint, evaluation if due (here, or `evaluate`
        starts it elsewhere), best checkpoint if the score improved (checked on logged
        updates). The training loop set `self.checkpoint`."""
        if self.periodic_due():
            self.checkpoint(f"update_{self.updates:08d}")
        if self.eval_due():
            (evaluate or self.evaluate_here)(model)
        if logged and self.improved():
            self.checkpoint("best")

    def evaluate_here(self, model: torch.nn.Module) -> None:
        """The default `start_evaluation`: play the current parameters in this process."""
        from actorcritic.run.evaluate import evaluate_during_training

        evaluate_during_training(self, model)

    def eval_due(self) -> bool:
        if not self.cfg.run.eval_every or self.env_steps < self.next_eval:
            return False
        while self.next_eval <= self.env_steps:
            self.next_eval += self.cfg.run.eval_every
        return True

    # ------------------------------------------------------------ the end

    def summary(self, final_eval: dict | None, status: str = "finished") -> dict:
        wall = self.wall_seconds
        out = {
            "preset": self.cfg.preset,
            "algo": self.cfg.algo.name,
            "env_id": self.cfg.env.id,
            "seed": self.cfg.run.seed,
            "status": status,
            "stop_reason": self.stop_reason,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "episodes": self.window.count,
            "wall_seconds": round(wall, 3),
            "eval_seconds": round(self.eval_seconds, 3),
            "sps": round(self.env_steps / wall, 1) if wall > 0 else 0.0,
            "mean_return_100": self.window.mean,
            "median_return_100": self.window.median,
            "best_score": self.best_score,
            "run_dir": str(self.run_dir),
        }
        if self.init_from:
            out["init_from"] = self.init_from
        if self.window.win_rate is not None:
            out["win_rate_100"] = self.window.win_rate
        if self.scenario_windows.windows:
            out["scenarios"] = self.scenario_windows.summary()
        if final_eval is not None:
            out["eval"] = final_eval
        write_atomic(self.run_dir / "summary.json",
                     (json.dumps(out, indent=2) + "\n").encode())
        return out

    def close(self) -> None:
        self.restore_signal_handlers()
        self.progress.close()
        self.logger.close()
        if self.lock is not None:
            self.lock.release()


def summary_line(summary: dict) -> str:
    ev = summary.get("eval") or {}
    parts = [f"{summary['env_steps']} env steps in {summary['wall_seconds']:.1f}s "
             f"({summary['sps']:,.0f} steps/s)"]
    if summary.get("mean_return_100") is not None:
        parts.append(f"mean_return_100 {summary['mean_return_100']:.1f}")
    if ev:
        parts.append(f"eval {ev['mean_return']:.1f} +- {ev['std_return']:.1f} over "
                     f"{ev['episodes']} episodes")
    return "; ".join(parts)
