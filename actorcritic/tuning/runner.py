"""The search loop: up to `jobs` trial processes at a time, asked of and told to an Optuna
study; the reports rewritten after every trial. Imported once Optuna is known to be there.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna import Study, Trial
from optuna.trial import TrialState

from actorcritic.config import load_config
from actorcritic.errors import ConfigError, UserError
from actorcritic.tuning import outputs
from actorcritic.tuning.space import SearchSpace, decode_params, suggest
from actorcritic.tuning.trial import TrialProcess, objective, read_summary
from actorcritic.tuning.tunedir import TuneSettings

POLL_SECONDS = 0.5
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class Search:
    settings: TuneSettings
    space: SearchSpace
    tune_dir: Path
    jobs: int
    prune: bool
    quiet: bool
    tuning_only: list[str] = field(default_factory=list)  # trials' run settings, not best.yaml's
    started: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)


def recover(study: Study, search: Search) -> None:
    """Trials a killed search left RUNNING: complete if their run finished, else failed and
    queued to run again with the same params."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_dir = t.user_attrs.get("run_dir")
        value = objective(read_summary(Path(run_dir))) if run_dir else None
        if value is not None:
            study.tell(t.number, value)
            search.say(f"trial {t.number}: its run had finished ({value:g}); kept")
        else:
            study.tell(t.number, state=TrialState.FAIL)
            study.enqueue_trial(t.params, user_attrs={"rerun_of": t.number})
            search.say(f"trial {t.number} was cut off by a stopped search; it runs again")
    write_outputs(study, search)


def run_trials(study: Study, search: Search, n_trials: int) -> None:
    """Start trials (up to `jobs` at a time) until `n_trials` are complete or pruned; each
    one this call starts counts, so failing trials cannot loop."""
    to_start = max(0, n_trials - len(study.get_trials(deepcopy=False, states=FINISHED)))
    running: list[tuple[Trial, TrialProcess]] = []
    try:
        while to_start or running:
            while to_start and len(running) < search.jobs:
                to_start -= 1
                started = start_trial(study, search)
                if started:
                    running.append(started)
            time.sleep(POLL_SECONDS)
            for item in list(running):
                if watch(item, search.prune):
                    running.remove(item)
                    end_trial(study, search, *item)
    except BaseException as exc:
        stop_trials(study, search, running)
        if isinstance(exc, KeyboardInterrupt):
            print(f"actorcritic: search stopped; {search.tune_dir} keeps the study: run the "
                  f"same command to continue it", file=sys.stderr)
        raise


def start_trial(study: Study, search: Search) -> tuple[Trial, TrialProcess] | None:
    trial = study.ask()
    params = suggest(trial, search.space)
    s = search.settings
    seed = s.seed + (trial.number if s.vary_seed else 0)
    run_dir = search.tune_dir / "trials" / f"{trial.number:04d}"
    overrides = outputs.trial_overrides(s, params, seed, search.tuning_only)
    trial.set_user_attr("seed", seed)
    try:  # a combination of values can break a rule between keys
        load_config(s.preset, overrides)
    except ConfigError as exc:
        trial.set_user_attr("error", str(exc))
        study.tell(trial, state=TrialState.FAIL)
        search.say(f"trial {trial.number} failed: {exc}")
        write_outputs(study, search)
        return None
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("tuning_only", search.tuning_only)
    return trial, TrialProcess(trial.number, s.preset, run_dir, overrides, s.eval_every)


def watch(item: tuple[Trial, TrialProcess], prune: bool) -> bool:
    """Report new evaluations, prune if they trail; True once the run has exited."""
    trial, proc = item
    exited = proc.poll() is not None  # first: then every row it wrote is read below
    for step, value in proc.new_evals():
        trial.report(value, step)
        if prune and not proc.pruned and trial.should_prune():
            proc.pruned = True
            proc.terminate()
    return exited


def end_trial(study: Study, search: Search, trial: Trial, proc: TrialProcess) -> None:
    rc, summary = proc.poll(), record_run(trial, proc)
    value = objective(summary)
    if value is not None:  # finished, even if a prune came too late to stop it
        study.tell(trial, value)
        text = f"complete: {value:g}"
    elif proc.pruned:
        study.tell(trial, state=TrialState.PRUNED)  # its value: the last evaluation
        text = f"pruned at {proc.last_step} env steps"
    else:
        line = proc.last_log_line().removeprefix("actorcritic: error: ")
        trial.set_user_attr("error", f"exit code {rc}: {line}"[:500])
        study.tell(trial, state=TrialState.FAIL)
        write_outputs(study, search)
        if rc == UserError.exit_code:  # bad input: every other trial would fail the same way
            raise UserError(f"trial {trial.number} stopped the search: {line} (its output: "
                            f"{proc.log_path})")
        text = f"failed (exit code {rc}): {line} (see {proc.log_path})"
    write_outputs(study, search)
    best = best_trial(study)
    tail = f"; best {best.value:g} (trial {best.number})" if best else ""
    search.say(f"trial {trial.number} {text} in {proc.wall_seconds:.0f} s{tail}")


def record_run(trial: Trial, proc: TrialProcess) -> dict[str, Any] | None:
    """Keep the run's env steps and wall time with the trial; return its summary."""
    summary = proc.summary()
    trial.set_user_attr("wall_seconds", round(proc.wall_seconds, 1))
    trial.set_user_attr("env_steps", summary["env_steps"] if summary else proc.last_step)
    return summary


def stop_trials(study: Study, search: Search, running: list[tuple[Trial, TrialProcess]]) -> None:
    """Ctrl-C, SIGTERM or an error: stop every run, fail its trial, queue it to run again."""
    for _, proc in running:
        proc.terminate()
    for trial, proc in running:
        proc.stop()
        try:
            record_run(trial, proc)
            trial.set_user_attr("error", "the search was stopped")
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number})
        except Exception:  # the next search fails and re-runs what is left RUNNING
            pass
    write_outputs(study, search)


def best_trial(study: Study) -> Any:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(done, key=lambda t: t.value) if done else None


def write_outputs(study: Study, search: Search) -> None:
    trials = study.get_trials(deepcopy=False)
    keys = list(search.space.params)
    rows = outputs.trial_rows(trials, keys)
    outputs.write_trials_csv(search.tune_dir / "trials.csv", rows, keys)
    if rows:
        outputs.plot_trials(search.tune_dir / "trials.png", rows,
                            f"actorcritic tune {search.settings.preset}")
    best = best_trial(study)
    if best is not None:
        outputs.write_best(search.tune_dir / "best.yaml", search.settings, best,
                           search.tune_dir)


def summarize(study: Study, search: Search) -> dict[str, Any]:
    """Print and return the counts and the best trial."""
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    best = best_trial(study)
    out: dict[str, Any] = {"tune_dir": str(search.tune_dir), "preset": search.settings.preset,
                           "trials": counts,
                           "wall_seconds": round(time.monotonic() - search.started, 1)}
    finished = counts.get("complete", 0) + counts.get("pruned", 0)
    search.say(f"{finished} trials finished ({', '.join(f'{n} {k}' for k, n in counts.items())})"
               f", this call {out['wall_seconds']:.0f} s")
    if best is not None:
        out["best"] = {"number": best.number, "value": best.value,
                       "params": decode_params(best.params),
                       "run_dir": best.user_attrs.get("run_dir")}
        shown = " ".join(f"{k}={v}" for k, v in out["best"]["params"].items())
        search.say(f"best: trial {best.number}, evaluation {best.value:g}: {shown}")
        search.say(f"results in {search.tune_dir} (trials.csv, trials.png, best.yaml); train "
                   f"the best: actorcritic train {search.tune_dir / 'best.yaml'}")
    return out
