"""`tune()`: search a preset's hyperparameters with Optuna (the CLI's `tune` calls it).

Each trial is one `actorcritic train` child process with a short budget; its periodic
evaluations feed a median pruner and its final evaluation is the objective. The study lives
in TUNE_DIR/study.db, so a search that was stopped (Ctrl-C) or killed continues where it
was: finished trials are kept, trials it left running are failed and run again.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

from actorcritic.config import ALIASES, load_config, parse_override
from actorcritic.errors import ConfigError, UserError
from actorcritic.extras import require
from actorcritic.tuning import outputs, tunedir
from actorcritic.tuning.space import (
    SearchSpace,
    builtin_space_path,
    check_space,
    load_space,
    parse_space,
)
from actorcritic.tuning.tunedir import TuneSettings

STUDY_NAME = "actorcritic"
EVALS_PER_TRIAL = 4  # periodic evaluations per trial: the points where pruning can act
SAMPLER_STARTUP_TRIALS = 5  # random trials before TPE models the results
PRUNER_STARTUP_TRIALS = 4  # complete trials before any trial is pruned


def import_optuna() -> Any:
    optuna = require("optuna", "tune", "actorcritic tune", ConfigError)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def tune(preset: str, trials: int, *, tune_dir: str | Path | None = None,
         space: str | Path | None = None, trial_steps: int | None = None,
         overrides: list[str] | None = None, seed: int | None = None,
         vary_seed: bool | None = None, jobs: int | None = None, prune: bool = True,
         quiet: bool = False) -> dict[str, Any]:
    """Run trials until the study in `tune_dir` has `trials` finished (complete or pruned)
    ones; return the summary. Options left None take the tune dir's stored values on resume.
    """
    optuna = import_optuna()
    from actorcritic.tuning import runner

    if trials < 1 or (trial_steps is not None and trial_steps < 1) \
            or (jobs is not None and jobs < 1):
        raise UserError("--trials, --trial-steps and --jobs must be at least 1")
    tune_dir = (Path(tune_dir) if tune_dir else tunedir.default_tune_dir(preset)).absolute()
    settings, space_obj, new = resolve_settings(
        preset, tune_dir, space=space, trial_steps=trial_steps, overrides=overrides or [],
        seed=seed, vary_seed=vary_seed)
    jobs = jobs or os.cpu_count() or 1
    search = runner.Search(settings, space_obj, tune_dir, jobs, prune, quiet,
                           tuning_only(settings, jobs))
    load_config(settings.preset, outputs.trial_overrides(settings, {}, settings.seed,
                                                         search.tuning_only))
    if new:
        tunedir.create(tune_dir, settings)
    # Both installed here, as `train` does: a search started as a background job of a script
    # inherits SIGINT ignored, and Python then keeps it ignored, so Ctrl-C (or a kill -INT)
    # would be lost and the search would run on to its end.
    main_thread = threading.current_thread() is threading.main_thread()
    old_handlers = {sig: signal.signal(sig, _raise_interrupt)
                    for sig in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        with tunedir.locked(tune_dir):
            study = open_study(optuna, search)
            search.say(f"tune {settings.preset}: {len(space_obj.params)} keys, "
                       f"{settings.trial_steps} env steps per trial, {jobs} at a time; "
                       f"study in {tunedir.storage_url(tune_dir)}")
            runner.recover(study, search)
            runner.run_trials(study, search, trials)
            return runner.summarize(study, search)
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def resolve_settings(preset: str, tune_dir: Path, *, space: str | Path | None,
                     trial_steps: int | None, overrides: list[str], seed: int | None,
                     vary_seed: bool | None) -> tuple[TuneSettings, SearchSpace, bool]:
    """The search's settings: from the options for a new tune dir, from its tune.yaml (the
    options, where given, must agree) for one being continued."""
    ident = tunedir.preset_identity(preset)
    stored = tunedir.read_settings(tune_dir)
    given_space = load_space(space) if space else None
    if stored is not None:
        tunedir.check_same(tune_dir, stored, {
            "preset": ident, "space": given_space.to_dict() if given_space else None,
            "trial_steps": trial_steps, "seed": seed, "vary_seed": vary_seed,
            "overrides": list(overrides) or None})
        space_obj = parse_space(stored.space_file, {"params": stored.space})
        check_space(space_obj, load_config(stored.preset, stored.overrides),
                    _keys(stored.overrides))
        return stored, space_obj, False
    cfg = load_config(ident, overrides)
    space_obj = given_space or load_space(builtin_space_path(cfg.algo.name))
    fixed = _keys(overrides)
    check_space(space_obj, cfg, fixed)
    if not cfg.run.eval_episodes:
        raise ConfigError("the objective is the final evaluation; run.eval_episodes must be "
                          "at least 1")
    steps = trial_steps or space_obj.trial_steps or cfg.run.total_steps
    eval_every = cfg.run.eval_every if "run.eval_every" in fixed \
        else math.ceil(steps / EVALS_PER_TRIAL)
    settings = TuneSettings(ident, cfg.algo.name, space_obj.source, space_obj.to_dict(), steps,
                            eval_every, cfg.run.seed if seed is None else seed,
                            bool(vary_seed), list(overrides))
    return settings, space_obj, True


def _keys(overrides: list[str]) -> list[str]:
    keys = [parse_override(text)[0] for text in overrides]
    return [ALIASES.get(k, k) for k in keys]


def tuning_only(settings: TuneSettings, jobs: int) -> list[str]:
    """Run settings of every trial that best.yaml does not keep: the budget, the periodic
    evaluation pruning reads, one torch thread per trial when trials share the cores."""
    fixed = _keys(settings.overrides)
    out = [f"run.total_steps={settings.trial_steps}"]
    if "run.eval_every" not in fixed:
        out.append(f"run.eval_every={settings.eval_every}")
    if jobs > 1 and "run.torch_threads" not in fixed:
        out.append("run.torch_threads=1")
    return out


def open_study(optuna: Any, search: Any) -> Any:
    """The tune dir's study (created on first use) with a sampler and a pruner."""
    storage = optuna.storages.RDBStorage(tunedir.storage_url(search.tune_dir))
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction="maximize",
                                load_if_exists=True)
    # Seeded by the trials so far: a resumed search does not draw the same params again.
    sampler = optuna.samplers.TPESampler(n_startup_trials=SAMPLER_STARTUP_TRIALS,
                                         seed=search.settings.seed + len(study.trials))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS,
                                         n_warmup_steps=2 * search.settings.eval_every) \
        if search.prune else optuna.pruners.NopPruner()
    return optuna.load_study(study_name=STUDY_NAME, storage=storage, sampler=sampler,
                             pruner=pruner)
