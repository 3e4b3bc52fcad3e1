"""Robustness: broken envs, NaNs, crashing and hanging env workers, user errors, disk faults.

Each test provokes one fault through the CLI entry point and asserts the message, the exit
code and what is kept intact. `main()` is called in-process where a process of its own adds
nothing (fast: no torch import per case); a real `python -m actorcritic.cli` process is used
where the process tree or the raw stderr are what is tested. The misbehaving envs below are
plain Gymnasium envs; a subprocess reaches them as `test_robustness:ID` (the module is
imported first, as `gym.make` does).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from procs import children, cli_process, exists, wait_for_metrics

from actorcritic import train
from actorcritic.algorithms.update import clip_and_measure, guard_update
from actorcritic.cli import main
from actorcritic.config import load_config
from actorcritic.errors import NonFiniteError
from actorcritic.run import checkpoint as checkpoint_module
from actorcritic.run.checkpoint import CheckpointDir, load_checkpoint, save_checkpoint
from actorcritic.training import build_model, spaces_for

TESTS = Path(__file__).resolve().parent

# Sync envs, tiny runs, no final evaluation.
BASE = ["--quiet", "--seed", "5", "--set", "env.backend=sync", "--set", "env.num_envs=2",
        "--set", "run.eval_episodes=0", "--set", "algo.lr_schedule=constant"]


# ---------------------------------------------------------------- misbehaving envs

class Simple(gym.Env):
    """A valid env: 3 float32 features, 2 actions, reward 1, episodes of `length` steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)
    length = 20

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.full(3, self.t / 1000, np.float32)

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, False, self.t >= self.length, {}


class BadObsDtype(Simple):
    def _obs(self):
        return np.zeros(3, np.float64)  # the space says float32


class BadObsShape(Simple):
    def _obs(self):
        return np.zeros(2, np.float32)  # the space says (3,)


class DictAction(Simple):
    action_space = gym.spaces.Dict({"move": gym.spaces.Discrete(2)})


class TupleAction(Simple):
    action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(2)))


class NanReward(Simple):
    def step(self, action):
        obs, _, term, trunc, info = super().step(action)
        return obs, float("nan"), term, trunc, info


class TextReward(Simple):
    def step(self, action):
        obs, _, term, trunc, info = super().step(action)
        return obs, "1.0", term, trunc, info


class OldResetApi(Simple):
    def reset(self, *, seed=None, options=None):
        return super().reset(seed=seed)[0]  # old Gym: the observation only


class OldStepApi(Simple):
    def step(self, action):
        obs, reward, term, trunc, info = super().step(action)
        return obs, reward, term or trunc, info  # old Gym: 4 values


class MultiDiscreteTarget(Simple):
    """Two sub-actions; reward 1 for each that hits its target (2 and 1)."""

    action_space = gym.spaces.MultiDiscrete([3, 2])

    def step(self, action):
        obs, _, term, trunc, info = super().step(action)
        return obs, float(action[0] == 2) + float(action[1] == 1), term, trunc, info


class Faulty(Simple):
    """Misbehaves from its `after`+1-th step on, in the env reset with seed `bad_seed`
    (env index i of a run gets seed run.seed + i): kind = nan_obs | inf_reward | huge_reward
    | raise | hang | busy (each step computes for 20 ms of CPU time, as a slow engine does).
    Records its pid in `pid_dir` (to find leftover worker processes)."""

    length = 1000  # no episode end, so env steps count straight

    def __init__(self, kind: str = "", after: int = 0, bad_seed: int | None = None,
                 pid_dir: str | None = None):
        self.kind, self.after, self.bad_seed = kind, after, bad_seed
        self.steps, self.first_seed = 0, None
        if pid_dir:
            Path(pid_dir, str(os.getpid())).touch()

    def reset(self, *, seed=None, options=None):
        if self.first_seed is None:
            self.first_seed = seed
        return super().reset(seed=seed)

    def step(self, action):
        obs, reward, term, trunc, info = super().step(action)
        self.steps += 1
        bad = self.steps > self.after and self.bad_seed in (None, self.first_seed)
        if bad and self.kind == "nan_obs":
            obs[1] = np.nan
        elif bad and self.kind == "inf_reward":
            reward = float("inf")
        elif bad and self.kind == "huge_reward":
            reward = 1e38  # finite, but the returns overflow float32
        elif bad and self.kind == "raise":
            raise ValueError(f"sensor unplugged at step {self.steps}")
        elif bad and self.kind == "hang":
            time.sleep(300)
        elif bad and self.kind == "busy":
            start = time.process_time()  # CPU time: a stopped process does not advance it
            while time.process_time() - start < 0.02:
                pass
        return obs, reward, term, trunc, info


ENVS = {"Simple-v0": Simple, "BadObsDtype-v0": BadObsDtype, "BadObsShape-v0": BadObsShape,
        "DictAction-v0": DictAction, "TupleAction-v0": TupleAction, "NanReward-v0": NanReward,
        "TextReward-v0": TextReward, "OldResetApi-v0": OldResetApi,
        "OldStepApi-v0": OldStepApi, "MultiDiscreteTarget-v0": MultiDiscreteTarget,
        "Faulty-v0": Faulty}
for _id, _cls in ENVS.items():
    if _id not in gym.registry:
        # Old-API envs must reach our check unwrapped by Gymnasium's own checker.
        gym.register(_id, entry_point=_cls, disable_env_checker=True)


# ---------------------------------------------------------------- helpers

def cli(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI in-process; return (exit code, stderr)."""
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def run_cli(*args: str, cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "actorcritic.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("actorcritic: error: "), stderr
    return lines[0]


def finite_params(ckpt) -> bool:
    return all(torch.isfinite(t).all() for t in ckpt.section("model").values())


def files_of(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and "tb" not in p.parts}


# ---------------------------------------------------------------- env check at start-up

@pytest.mark.parametrize("env_id, expected", [
    ("BadObsDtype-v0", "reset() observation dtype float64; observation_space says float32"),
    ("BadObsShape-v0", "reset() observation has shape (2,); observation_space says (3,)"),
    ("DictAction-v0", "action_space Dict is not supported; expected Discrete, MultiDiscrete "
                      "or Box"),
    ("TupleAction-v0", "action_space Tuple is not supported"),
    ("NanReward-v0", "step() reward is nan; expected a finite float"),
    ("TextReward-v0", "step() reward is '1.0' (str); expected a finite float"),
    ("OldResetApi-v0", "reset() returned ndarray; expected a tuple (observation, info dict)"),
    ("OldStepApi-v0", "step() returned 4 values; expected 5 (observation, reward, "
                      "terminated, truncated, info)"),
    ("FrozenLake-v1", "observation_space is Discrete; expected a Box"),
])
def test_env_check_names_env_field_and_expectation(tmp_path, capsys, env_id, expected):
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", tmp_path / "run", *BASE,
                  "--set", f"env.id={env_id}")
    line = one_error_line(err)
    assert rc == 2
    assert f"env '{env_id}'" in line and expected in line, line
    assert not (tmp_path / "run").exists()  # nothing was created for a run that cannot start


def test_env_check_real_process_prints_one_line(tmp_path):
    result = run_cli("train", "cartpole-a2c", "--run-dir", tmp_path / "run", *BASE,
                     "--set", "env.id=test_robustness:OldStepApi-v0", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result.stderr)
    assert "env 'test_robustness:OldStepApi-v0': step() returned 4 values" in line


def test_env_check_can_be_switched_off(tmp_path, capsys):
    """env.check=false: the float64 observations are cast by the vector env and it trains."""
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", tmp_path / "run", *BASE,
                  "--set", "env.id=BadObsDtype-v0", "--set", "env.check=false",
                  "--set", "run.total_steps=64")
    assert rc == 0, err
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "final.safetensors")


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MultiDiscreteTarget-v0"])
def test_box_and_multidiscrete_actions_train_with_finite_losses(tmp_path, env_id):
    summary = train("cartpole-a2c", tmp_path / "run", quiet=True, overrides=[
        f"env.id={env_id}", "env.backend=sync", "env.num_envs=2", "run.total_steps=480",
        "run.eval_episodes=2", "run.log_every=1", "algo.lr_schedule=constant"])
    assert summary["status"] == "finished" and summary["updates"] == 30
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [float(r.split(",")[header.index("losses/total")]) for r in rows[1:]]
    assert len(losses) == 30 and all(math.isfinite(v) for v in losses)
    assert math.isfinite(summary["eval"]["mean_return"])
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "final.safetensors")
    assert finite_params(ckpt)


# ---------------------------------------------------------------- NaN / inf guard

def faulty_run(capsys, run_dir: Path, kwargs: str, total: int = 100_000, *extra: str):
    return cli(capsys, "train", "cartpole-a2c", "--run-dir", run_dir, *BASE,
               "--set", "env.id=Faulty-v0", "--set", f"env.kwargs={kwargs}",
               "--set", f"run.total_steps={total}", *extra)


@pytest.mark.parametrize("kind, what", [("nan_obs", "observation"), ("inf_reward", "reward")])
def test_non_finite_env_output_stops_with_env_index_and_keeps_last_good_policy(
        tmp_path, capsys, kind, what):
    # env index 1 (seed 6) turns bad at its 31st step: rollout 4 (8 steps each), step 6
    rc, err = faulty_run(capsys, tmp_path / "bad", f"{{kind: {kind}, after: 30, bad_seed: 6}}")
    line = one_error_line(err)
    assert rc == 3
    assert f"non-finite {what} from the environment at env index 1, rollout step 6" in line
    assert "the last good checkpoint was written" in line
    ckpt = load_checkpoint(tmp_path / "bad" / "checkpoints" / "final.safetensors")
    assert finite_params(ckpt)
    assert ckpt.meta["counters"]["updates"] == 3
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["stop_reason"] == "non-finite"
    # The checkpoint is the policy after the 3 good updates, not a reset or uniform one:
    # the same run without the fault, stopped there, has exactly the same parameters.
    rc, err = faulty_run(capsys, tmp_path / "good", "{kind: ''}", 48)
    assert rc == 0, err
    good = load_checkpoint(tmp_path / "good" / "checkpoints" / "final.safetensors")
    for key, value in good.section("model").items():
        assert torch.equal(ckpt.section("model")[key], value), key


@pytest.mark.parametrize("numpy_update", [True, False])
def test_non_finite_loss_stops_with_update_and_keeps_last_good_policy(tmp_path, capsys,
                                                                      numpy_update):
    # rewards of 1e38 from every env's 17th step: the returns overflow float32 in update 3
    # (a real process: NumPy's overflow warning must not reach stderr either)
    result = run_cli("train", "cartpole-a2c", "--run-dir", tmp_path / "bad", *BASE,
                     "--set", "env.id=test_robustness:Faulty-v0", "--set",
                     "env.kwargs={kind: huge_reward, after: 16}", "--set",
                     "run.total_steps=100000", f"run.numpy_update={numpy_update}", cwd=tmp_path)
    line = one_error_line(result.stderr)
    assert result.returncode == 3
    assert re.search(r"non-finite loss at update 3 \(.*losses/total=nan\)", line), line
    ckpt = load_checkpoint(tmp_path / "bad" / "checkpoints" / "final.safetensors")
    assert finite_params(ckpt)
    # the parameters are those after update 2; the counters include the rejected rollout
    assert ckpt.meta["counters"]["updates"] == 3
    rc, _ = faulty_run(capsys, tmp_path / "good", "{kind: ''}", 32,
                       "--set", f"run.numpy_update={numpy_update}")
    good = load_checkpoint(tmp_path / "good" / "checkpoints" / "final.safetensors")
    for key, value in good.section("model").items():
        assert torch.equal(ckpt.section("model")[key], value), key


def test_non_finite_gradient_names_the_parameter():
    """Through the real clip (which must not smear the NaN over every gradient) and guard."""
    cfg = load_config("cartpole-a2c", ["env.backend=sync"])
    model = build_model(cfg, *spaces_for(cfg))
    loss = sum((p ** 2).sum() for p in model.parameters())
    loss.backward()
    name, param = list(model.named_parameters())[2]
    param.grad[0, 0] = float("nan")
    params = list(model.parameters())
    grad_norm = clip_and_measure(params, cfg.algo.max_grad_norm)
    assert torch.isnan(grad_norm)
    with pytest.raises(NonFiniteError) as info:
        guard_update(model, loss.detach(), {"diag/grad_norm": grad_norm}, 7)
    assert str(info.value) == f"non-finite gradient at update 7 in {name}"
    # finite gradients are still clipped to max_grad_norm
    for p in params:
        p.grad = torch.ones_like(p)
    norm = clip_and_measure(params, 0.5)
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    assert norm > 1 and abs(total.item() - 0.5) < 1e-4


# ---------------------------------------------------------------- subprocess env workers

ASYNC = ["--set", "env.backend=async"]


def test_async_worker_exception_reaches_main_with_message_and_index(tmp_path, capsys):
    before = children(os.getpid())
    rc, err = faulty_run(capsys, tmp_path / "run", "{kind: raise, after: 20, bad_seed: 6}",
                         100_000, *ASYNC)
    line = one_error_line(err)
    assert rc == 2
    assert ("env 'Faulty-v0' worker 1 raised ValueError in step(): sensor unplugged at "
            "step 21 (at " + __file__) in line, line
    assert "the last good checkpoint was written" in line
    assert children(os.getpid()) == before  # workers gone, none left as a zombie
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "final.safetensors")
    assert ckpt.meta["counters"]["updates"] == 2 and finite_params(ckpt)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["stop_reason"] == "env-error"


def test_sync_env_exception_names_index_and_location(tmp_path, capsys):
    rc, err = faulty_run(capsys, tmp_path / "run", "{kind: raise, after: 3, bad_seed: 6}")
    line = one_error_line(err)
    assert rc == 2
    assert "env 'Faulty-v0' index 1 raised ValueError in step(): sensor unplugged at step 4" \
        in line and f"{__file__}:" in line, line


@pytest.mark.parametrize("kind, expected", [
    ("raise", "worker 1 raised ValueError in step(): sensor unplugged at step 11"),
    ("hang", "worker 1 did not answer step() within 2 s (env.step_timeout)"),
])
def test_async_worker_crash_or_hang_in_cli_process_leaves_no_process(tmp_path, kind, expected):
    pids = tmp_path / "pids"
    pids.mkdir()
    start = time.monotonic()
    result = run_cli("train", "cartpole-a2c", "--run-dir", tmp_path / "run", *BASE, *ASYNC,
                     "--set", "env.id=test_robustness:Faulty-v0", "--set", "env.step_timeout=2",
                     "--set", f"env.kwargs={{kind: {kind}, after: 10, bad_seed: 6, "
                     f"pid_dir: '{pids}'}}", "--set", "run.total_steps=100000", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result.stderr)
    assert expected in line, line
    assert time.monotonic() - start < 100
    workers = [int(p.name) for p in pids.iterdir()]
    assert len(workers) >= 3  # the start-up check's env in the CLI process, 2 workers
    time.sleep(0.2)
    assert not [pid for pid in workers if exists(pid)], "env processes outlived the CLI"


@pytest.mark.slow
@pytest.mark.parametrize("preset, sets", [
    ("cartpole-a2c", ["env.backend=async", "env.step_timeout=2"]),
    # only the helper's env (index 1, seed 6) is slow, so the main process waits for it
    ("cartpole-a2c", ["algo.processes=2", "algo.normalize_advantage=false",
                      "run.worker_timeout=2", "env.kwargs={kind: busy, bad_seed: 6}"]),
    ("cartpole-a3c", ["algo.num_workers=2", "env.num_envs=1", "run.worker_timeout=2",
                      "run.max_worker_restarts=0", "run.eval_every=0",
                      "run.stop_eval_return=null"]),
], ids=["env-workers", "a2c-processes", "a3c-workers"])
def test_a_run_stopped_past_its_timeouts_goes_on_when_continued(tmp_path, preset, sets):
    """Ctrl-Z (here SIGSTOP to the run's process group) for longer than the timeout that
    watches its workers, then `fg` (SIGCONT): the run goes on and finishes. The time it
    was stopped is not the workers' silence (it once stopped a football run with "did not
    answer step()"). Each env step takes 20 ms of CPU time, so the workers answer only a
    while after SIGCONT, and the main process is stopped while it waits for them."""
    run = tmp_path / "run"
    args = [sys.executable, "-m", "actorcritic.cli", "train", preset, "--run-dir", str(run),
            *BASE, "--set", "env.id=test_robustness:Faulty-v0", "env.kwargs={kind: busy}",
            "run.log_every=2", "run.total_steps=400", *sets]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")]))
    with cli_process(args, env=env, cwd=tmp_path) as proc:
        wait_for_metrics(proc, run, rows=2)
        os.killpg(proc.pid, signal.SIGSTOP)
        time.sleep(4)
        os.killpg(proc.pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["env_steps"] >= 400


# ---------------------------------------------------------------- user errors

def test_run_dir_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", tmp_path / "file" / "run",
                  *BASE)
    assert rc == 2
    line = one_error_line(err)
    assert f"run dir {tmp_path / 'file' / 'run'} cannot be written: Not a directory" in line
    assert (tmp_path / "file").read_text() == "not a directory"


def test_run_dir_in_a_read_only_dir_is_refused(tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        try:
            (parent / "probe").touch()
            (parent / "probe").unlink()
            pytest.skip("running as root: permissions do not stop writes")
        except PermissionError:
            pass
        rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", parent / "run", *BASE)
        assert rc == 2
        assert "cannot be written: Permission denied" in one_error_line(err)
    finally:
        parent.chmod(0o700)


def test_resume_of_missing_dir_and_of_a_dir_that_is_not_a_run(tmp_path, capsys):
    rc, err = cli(capsys, "train", "--resume", tmp_path / "nowhere")
    assert rc == 2 and "cannot resume" in one_error_line(err) and "no such directory" in err
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    rc, err = cli(capsys, "train", "--resume", tmp_path / "notes")
    assert rc == 2 and "has no config.yaml (not a run dir?)" in one_error_line(err)
    (tmp_path / "notes" / "config.yaml").write_text("env: {id: CartPole-v1}\n")
    rc, err = cli(capsys, "train", "--resume", tmp_path / "notes")
    assert rc == 2 and "no checkpoint in" in one_error_line(err)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished sync CartPole run (64 steps), copied per test that changes it."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train("cartpole-a2c", run_dir, quiet=True, overrides=[
        "env.backend=sync", "env.num_envs=2", "run.total_steps=64", "run.eval_episodes=0",
        "algo.lr_schedule=constant", "run.seed=5"])
    return run_dir


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_resume_with_incompatible_config_exits_2_and_keeps_the_run(tmp_path, capsys,
                                                                   finished_run):
    run = copy_run(finished_run, tmp_path / "run")
    before = files_of(run)
    rc, err = cli(capsys, "train", "--resume", run, "--set", "model.hidden_sizes=[32]")
    assert rc == 2
    assert "model.hidden_sizes was [64, 64] in that run and is [32] now" in one_error_line(err)
    assert files_of(run) == before


def test_resume_with_a_checkpoint_of_another_model_names_the_tensors(tmp_path, capsys,
                                                                     finished_run):
    run = copy_run(finished_run, tmp_path / "run")
    other = tmp_path / "other"
    train("cartpole-a2c", other, quiet=True, overrides=[
        "env.backend=sync", "env.num_envs=2", "run.total_steps=16", "run.eval_episodes=0",
        "model.hidden_sizes=[32]"])
    # someone copies the other run's checkpoint in as the newest one
    ckpt = load_checkpoint(other / "checkpoints" / "final.safetensors")
    ckpt.meta["counters"]["updates"] = 10**6
    save_checkpoint(run / "checkpoints" / "update_99999999.safetensors", ckpt.tensors, ckpt.meta)
    before = files_of(run)
    rc, err = cli(capsys, "train", "--resume", run, "--set", "run.total_steps=128")
    line = one_error_line(err)
    assert rc == 2
    assert "is from a different model: shape differs for actor_trunk.encoder.net.0.bias " \
           "(checkpoint (32,), model (64,))" in line and "missing " in line, line
    assert files_of(run) == before  # logs not truncated, nothing written


def test_eval_of_a_checkpoint_that_does_not_fit_its_model_names_the_tensors(
        tmp_path, capsys, finished_run):
    ckpt = load_checkpoint(finished_run / "checkpoints" / "final.safetensors")
    ckpt.meta["config"]["model"]["hidden_sizes"] = [64, 32]  # a hand-edited config
    path = tmp_path / "edited.safetensors"
    save_checkpoint(path, ckpt.tensors, ckpt.meta)
    rc, err = cli(capsys, "eval", path, "--episodes", "1")
    line = one_error_line(err)
    assert rc == 2
    assert f"checkpoint {path} is from a different model: shape differs for " \
           "actor_trunk.encoder.net.2.bias (checkpoint (64,), model (32,))" in line, line


def test_init_from_a_checkpoint_of_another_model_family_is_refused(tmp_path, capsys):
    """None of the checkpoint's tensors fits (names or shapes): refused, not a silent
    fresh start. (Partly matching checkpoints load what fits: test_checkpoint.py.)"""
    path = tmp_path / "other.safetensors"
    save_checkpoint(path, {"model.encoder.conv1.weight": torch.zeros(8, 4, 3, 3),
                           "model.head.bias": torch.zeros(6)}, {"counters": {"updates": 1}})
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", tmp_path / "run", *BASE,
                  "--init-from", path)
    line = one_error_line(err)
    assert rc == 2
    assert f"checkpoint {path} is from a different model: none of its 2 tensors matches " \
           "this model" in line and "model.encoder.conv1.weight" not in line, line
    assert "encoder.conv1.weight" in line and "actor_trunk.encoder.net.0.weight" in line
    # nothing was written, so the same command works once fixed
    assert not any((tmp_path / "run").iterdir())


def test_unknown_env_id_suggests_close_matches(tmp_path, capsys):
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", tmp_path / "run", *BASE,
                  "--set", "env.id=CartPole-v2")
    assert rc == 2
    line = one_error_line(err)
    assert "unknown env id 'CartPole-v2'; did you mean CartPole-v1, CartPole-v0" in line, line
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", tmp_path / "run", *BASE,
                  "--set", "env.id=no_such_module:Thing-v0")
    assert rc == 2
    assert "module 'no_such_module' could not be imported: ModuleNotFoundError" in \
        one_error_line(err)


# ---------------------------------------------------------------- existing run dirs

def test_existing_run_dir_needs_overwrite_and_overwrite_replaces_it(tmp_path, capsys,
                                                                    finished_run):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "notes.txt").write_text("old run")
    before = files_of(run)
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", run, *BASE,
                  "--set", "run.total_steps=32")
    assert rc == 2
    assert f"run dir {run} already exists; pass --overwrite" in one_error_line(err)
    assert files_of(run) == before
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", run, *BASE,
                  "--set", "run.total_steps=32", "--overwrite")
    assert rc == 0, err
    assert not (run / "notes.txt").exists()
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 32
    assert load_checkpoint(run / "checkpoints" / "final.safetensors").meta["counters"][
        "env_steps"] == 32


def test_overwrite_refuses_a_dir_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", tmp_path / "home", *BASE,
                  "--overwrite")
    assert rc == 2 and "is not a run (no config.yaml)" in one_error_line(err)
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"


# ---------------------------------------------------------------- disk problems

def test_checkpoint_write_without_space_keeps_the_previous_one(tmp_path, capsys,
                                                              monkeypatch, finished_run):
    """Fault injection: the rename that publishes a checkpoint fails with ENOSPC (a full
    disk cannot be made safely on a shared machine; the real write path runs up to it)."""
    run = copy_run(finished_run, tmp_path / "run")
    final = run / "checkpoints" / "final.safetensors"
    old = final.read_bytes()
    real_replace = os.replace
    failed = []

    def replace(src, dst):
        if str(dst).endswith(".safetensors"):
            failed.append(Path(dst).name)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", replace)
    rc, err = cli(capsys, "train", "--resume", run, "--quiet", "--set", "run.total_steps=128",
                  "--set", "run.checkpoint_every=2")
    monkeypatch.undo()
    assert rc == 0, err  # training went on
    assert failed == ["update_00000006.safetensors", "update_00000008.safetensors",
                      "final.safetensors"]
    warnings = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 3 and all(
        line.startswith("actorcritic: warning: checkpoint ") and
        "could not be written (No space left on device); the previous checkpoint is kept" in line
        for line in warnings), err
    assert final.read_bytes() == old  # the previous checkpoint, intact and loadable
    assert load_checkpoint(final).meta["counters"]["env_steps"] == 64
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 128


def test_checkpoint_path_blocked_by_a_directory_is_reported_and_training_goes_on(
        tmp_path, capsys, finished_run):
    """A real write failure (works as root too): a directory sits where update 6 goes."""
    run = copy_run(finished_run, tmp_path / "run")
    blocker = run / "checkpoints" / "update_00000006.safetensors"
    (blocker / "inside").mkdir(parents=True)
    # keep 1 periodic checkpoint: pruning then meets the directory too, and must leave it
    rc, err = cli(capsys, "train", "--resume", run, "--quiet", "--set", "run.total_steps=128",
                  "--set", "run.checkpoint_every=2", "--set", "run.keep_checkpoints=1")
    assert rc == 0, err
    line = [line for line in err.splitlines() if line.strip()]
    assert len(line) == 1 and f"warning: checkpoint {blocker} could not be written" in line[0]
    assert blocker.is_dir()
    for name in ("update_00000008", "final"):
        ckpt = load_checkpoint(run / "checkpoints" / f"{name}.safetensors")
        assert finite_params(ckpt)
    assert CheckpointDir(run).latest().name == "final.safetensors"
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
