"""`actorcritic tune`: one real search on CartPole, killed, stopped with Ctrl-C and continued
to 8 trials; its best.yaml trained to 475; pruning; and the bad input that stops a search
before anything runs.

The search runs once (a module fixture) and several tests read what it left. Bad input is
tested through `main()` in-process (one line, exit 2); the search itself through real
`python -m actorcritic.cli` processes, since signals and the process tree are what count.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from procs import children, cli_process, running, signal_state

from actorcritic.cli import main
from actorcritic.config import load_config

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "actorcritic.cli"]
TRIAL_STEPS = "20000"
TRIALS = 8


def read_trials(tune_dir: Path) -> list[dict]:
    try:
        with open(tune_dir / "trials.csv", newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def finished(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]


def wait_for(condition, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, (what, proc.communicate())
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.2)


def wait_gone(pids: set[int], timeout: float = 60) -> list[int]:
    deadline = time.time() + timeout
    while any(running(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    return [p for p in pids if running(p)]


# The searches here run with the NumPy accelerators (kept in best.yaml): 2.6x the steps/s
# of the plain torch default on cartpole-a2c, and the search whose best.yaml trains to 475.
ACCELERATED = ["--set", "run.numpy_acting=true", "run.numpy_update=true"]


def tune_cmd(tune_dir: Path, trials: int, *extra: str) -> list[str]:
    return [*CLI, "tune", "cartpole-a2c", "--trials", str(trials), "--tune-dir", str(tune_dir),
            *ACCELERATED, *extra]


def kill_after_first_trial(d: Path) -> SimpleNamespace:
    """A search of 3 trials, SIGKILLed once one has finished."""
    with cli_process(tune_cmd(d, 3, "--trial-steps", TRIAL_STEPS, "--jobs", "2")) as proc:
        wait_for(lambda: finished(read_trials(d)), proc, 240, "finished trial")
        kids = children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = {r["number"]: r for r in finished(read_trials(d))}
    stamps = {n: (Path(r["run_dir"]) / "summary.json").stat().st_mtime_ns
              for n, r in done.items()}
    return SimpleNamespace(finished=done, stamps=stamps, orphans=wait_gone(kids))


def interrupt_a_running_trial(d: Path) -> SimpleNamespace:
    """The search continued (no options but the dir), Ctrl-C once a new trial trains. It is
    started with SIGINT ignored, as `tune ... &` in a script starts it: it must still stop."""
    old = set((d / "trials").iterdir())
    with cli_process(tune_cmd(d, TRIALS), sigint_ignored=True) as proc:
        wait_for(lambda: any((p / "metrics.csv").exists() for p in (d / "trials").iterdir()
                             if p not in old and p.is_dir()), proc, 120, "new trial")
        kids, state = children(proc.pid), signal_state(proc.pid)
        start = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    return SimpleNamespace(rc=proc.returncode, err=err, state=state, seconds=time.time() - start,
                           orphans=wait_gone(kids, 10), kids=kids)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    d = tmp_path_factory.mktemp("tune") / "cartpole"
    start = time.time()
    killed = kill_after_first_trial(d)
    interrupted = interrupt_a_running_trial(d)
    result = subprocess.run(tune_cmd(d, TRIALS), capture_output=True, text=True, timeout=600)
    print(f"tune: {time.time() - start:.0f} s for the three calls\n{result.stdout}")
    return SimpleNamespace(dir=d, killed=killed, interrupted=interrupted, result=result,
                           rows=read_trials(d))


def test_search_ends_with_the_trials_asked_for_and_its_reports(search):
    assert search.result.returncode == 0, search.result.stderr
    assert len(finished(search.rows)) == TRIALS, search.rows
    for row in search.rows:  # every failure is a trial cut off by the kill or the Ctrl-C
        assert row["state"] != "FAIL" or "re-run as trial" in row["note"], row
    assert len({r["run_dir"] for r in search.rows}) == len(search.rows)
    assert {"algo.lr", "algo.num_steps"} <= set(search.rows[0])
    assert (search.dir / "trials.png").read_bytes()[:4] == b"\x89PNG"
    assert yaml.safe_load((search.dir / "tune.yaml").read_text())["preset"] == "cartpole-a2c"
    assert "best: trial" in search.result.stdout


def test_a_killed_search_continues_without_repeating_finished_trials(search):
    assert search.killed.orphans == [], "trial processes outlived the killed search"
    rows = {r["number"]: r for r in search.rows}
    for number, row in search.killed.finished.items():
        assert rows[number]["state"] == row["state"] and rows[number]["value"] == row["value"]
        summary = Path(row["run_dir"]) / "summary.json"
        assert summary.stat().st_mtime_ns == search.killed.stamps[number], "trial re-ran"
    reruns = [r for r in search.rows if "re-run as trial" in r["note"]]
    assert reruns, "the kill and the Ctrl-C cut off no trial"
    keys = [k for k in search.rows[0] if k.startswith("algo.")]
    for row in reruns:
        again = rows[row["note"].rsplit(" ", 1)[1]]
        assert [again[k] for k in keys] == [row[k] for k in keys], (row, again)


def test_ctrl_c_stops_the_trials_and_keeps_the_study(search):
    i = search.interrupted
    assert i.rc == 130, (i.err, f"when sent: {i.state}")
    lines = i.err.strip().splitlines()
    assert lines[-1] == "actorcritic: interrupted", i.err
    assert any(line.startswith("actorcritic: search stopped; ") for line in lines), i.err
    assert i.kids and i.orphans == [] and i.seconds < 60
    assert any(r["note"].startswith("the search was stopped") for r in search.rows)


def test_best_yaml_trains_to_475(search, tmp_path):
    best = search.dir / "best.yaml"
    cfg = load_config(str(best))
    top = max((r for r in search.rows if r["state"] == "COMPLETE"),
              key=lambda r: float(r["value"]))
    assert cfg.algo.num_steps == int(top["algo.num_steps"])
    assert cfg.run.total_steps == load_config("cartpole-a2c").run.total_steps
    run = tmp_path / "best"
    result = subprocess.run([*CLI, "train", str(best), "--run-dir", str(run), "--quiet"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval"]["mean_return"] >= 475, summary


def test_a_trailing_trial_is_stopped_and_marked_pruned(tmp_path):
    """A pruner that always prunes: the run gets SIGTERM at its first evaluation, exits
    cleanly, and the trial keeps its last evaluation as its value. The run cannot end on
    its own first (no stop on a solved evaluation, 1M steps), however late a loaded
    machine lets the search see that evaluation."""
    import optuna

    from actorcritic.tune import import_optuna, resolve_settings, tuning_only
    from actorcritic.tuning import runner, tunedir

    import_optuna()
    settings, space, _ = resolve_settings(
        "cartpole-a2c", tmp_path, space=None, trial_steps=1_000_000, seed=None, vary_seed=None,
        overrides=["run.eval_every=2000", "run.eval_during_episodes=2",
                   "run.stop_eval_return=null"])
    tunedir.create(tmp_path, settings)
    search = runner.Search(settings, space, tmp_path, 1, True, True, tuning_only(settings, 1))

    class Always(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    study = optuna.create_study(direction="maximize", pruner=Always())
    runner.run_trials(study, search, 1)
    [trial] = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert 2000 in trial.intermediate_values  # pruned at the first, its value the last
    assert trial.value == trial.intermediate_values[max(trial.intermediate_values)]
    summary = json.loads((tmp_path / "trials" / "0000" / "summary.json").read_text())
    assert summary["stop_reason"] == "SIGTERM" and summary["env_steps"] < 1_000_000
    assert read_trials(tmp_path)[0]["state"] == "PRUNED"


def test_list_choices_and_the_builtin_spaces_validate():
    import optuna

    from actorcritic.tuning.space import (
        builtin_space_path,
        check_space,
        load_space,
        parse_space,
        suggest,
    )

    for algo, preset in (("a2c", "cartpole-a2c"), ("a3c", "cartpole-a3c"),
                         ("impala", "cartpole-impala"), ("sac", "pendulum-sac"),
                         ("td3", "hopper-td3")):
        check_space(load_space(builtin_space_path(algo)), load_config(preset), [])
    space = parse_space("test", {"params": {
        "model.hidden_sizes": {"type": "categorical", "choices": [[64, 64], [32]]},
        "algo.num_steps": {"type": "int", "low": 4, "high": 16, "step": 4}}})
    check_space(space, load_config("cartpole-a2c"), [])
    params = suggest(optuna.trial.FixedTrial({"model.hidden_sizes": "[32]",
                                              "algo.num_steps": 12}), space)
    assert params == {"model.hidden_sizes": [32], "algo.num_steps": 12}


BAD_SPACES = {
    "unknown key": ({"algo.lrr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}, "algo.lrr"),
    "out of range": ({"algo.gamma": {"type": "uniform", "low": 0.9, "high": 1.5}},
                     "algo.gamma must be <= 1"),
    "float on an int key": ({"algo.num_steps": {"type": "uniform", "low": 4, "high": 8}},
                            "use type: int"),
    "unknown type": ({"algo.lr": {"type": "normal", "low": 0, "high": 1}}, "type:"),
    "bad choice": ({"algo.optimizer": {"type": "categorical", "choices": ["adam", "sgd"]}},
                   "algo.optimizer must be one of"),
    "the budget": ({"run.total_steps": {"type": "int", "low": 1, "high": 9}}, "--trial-steps"),
}


@pytest.mark.parametrize("case", list(BAD_SPACES))
def test_a_bad_search_space_is_one_line_before_anything_runs(case, tmp_path, capsys):
    params, expected = BAD_SPACES[case]
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"params": params}))
    tune_dir = tmp_path / "tune"
    assert main(["tune", "cartpole-a2c", "--trials", "2", "--space", str(space),
                 "--tune-dir", str(tune_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("actorcritic: error: "), err
    assert expected in err
    assert not tune_dir.exists()


def test_bad_preset_and_a_tune_dir_of_another_search_are_one_line(search, tmp_path, capsys):
    cases = [
        (["tune", "cartpole-a2cc", "--trials", "2", "--tune-dir", str(tmp_path / "t")],
         "unknown preset 'cartpole-a2cc'"),
        (["tune", "cartpole-a3c", "--trials", "9", "--tune-dir", str(search.dir)],
         "belongs to preset 'cartpole-a2c'"),
        (["tune", "cartpole-a2c", "--trials", "9", "--tune-dir", str(search.dir),
          "--trial-steps", "999"], "was made with --trial-steps 20000"),
        (["tune", "cartpole-a2c", "--trials", "2", "--tune-dir", str(tmp_path / "t"),
          "--set", "algo.lr=0.001"], "algo.lr is searched and also fixed"),
    ]
    for args, expected in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("actorcritic: error: "), err
        assert expected in err, err
    from actorcritic.tuning.tunedir import locked

    with locked(search.dir):  # a second search on the same study
        assert main(["tune", "cartpole-a2c", "--trials", "9", "--tune-dir", str(search.dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"in use by another actorcritic tune (pid {os.getpid()})" \
        in err, err
    assert not (tmp_path / "t").exists()
    assert len(finished(read_trials(search.dir))) == TRIALS  # nothing ran
