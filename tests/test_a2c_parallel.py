"""A2C over several processes (algo.processes): the combined gradient is the whole batch's,
real runs learn and resume, and a dead or hung process stops the run cleanly."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from procs import children, cli_process, running

from actorcritic.algorithms.update import rollout_loss
from actorcritic.config import AlgoConfig, ModelConfig, load_config
from actorcritic.errors import ConfigError
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.run.checkpoint import load_checkpoint
from actorcritic.run.session import check_resume_compatible
from actorcritic.samplers.processes import (
    combine,
    flat_gradients,
    share_of,
    torch_threads,
    valid_count,
    weighted_stats,
)
from actorcritic.samplers.rollout import RolloutBuffer
from actorcritic.training import train

OBS = gym.spaces.Box(-2, 2, (5,), np.float32)
ACTIONS = gym.spaces.Discrete(3)
T, N = 5, 6
CLI = [sys.executable, "-m", "actorcritic.cli"]
CARTPOLE = ["algo.processes=2", "algo.normalize_advantage=false", "run.eval_episodes=0"]


def random_rollout(seed: int) -> RolloutBuffer:
    rng = np.random.default_rng(seed)
    buf = RolloutBuffer(T, N, OBS, ACTIONS)
    b = buf.np
    b.obs[:] = rng.normal(size=b.obs.shape)
    b.actions[:] = rng.integers(0, 3, size=(T, N))
    b.rewards[:] = rng.normal(size=(T, N))
    b.terminated[:] = rng.random((T, N)) < 0.2
    b.first[1:] = b.terminated
    b.valid[:] = rng.random((T, N)) > 0.25
    b.valid[:, 0] = False  # one process's share with fewer valid steps than the other's
    return buf


def env_slice(buf: RolloutBuffer, lo: int, hi: int) -> RolloutBuffer:
    part = RolloutBuffer(T, hi - lo, OBS, ACTIONS)
    for name in RolloutBuffer.NAMES:
        getattr(part, name).copy_(getattr(buf, name)[:, lo:hi])
    return part


def gradient(model: ActorCritic, buf: RolloutBuffer, cfg: AlgoConfig):
    params = list(model.parameters())
    flat = torch.zeros(sum(p.numel() for p in params))
    flat_gradients(params, flat)
    loss, stats = rollout_loss(model, buf, cfg)
    loss.backward()
    return flat, {k: float(v) for k, v in stats.items()}


@pytest.mark.parametrize("shares", [(0, 3, 6), (0, 2, 4, 6)])
def test_combined_gradient_and_losses_equal_the_whole_batch(shares):
    cfg = AlgoConfig(gamma=0.9, gae_lambda=0.95, ent_coef=0.05, vf_coef=0.5)
    torch.manual_seed(0)
    model = ActorCritic(OBS, ACTIONS, ModelConfig(hidden_sizes=[16, 16]))
    buf = random_rollout(1)
    whole, whole_stats = gradient(model, buf, cfg)
    parts = [env_slice(buf, lo, hi) for lo, hi in zip(shares, shares[1:])]
    grads, stats = zip(*(gradient(model, part, cfg) for part in parts))
    counts = [valid_count(part) for part in parts]
    assert len(set(counts)) > 1  # the weighting matters
    own = grads[0].clone()
    combine(own, counts[0], list(grads[1:]), counts[1:])
    torch.testing.assert_close(own, whole, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(sum(grads) / len(grads), whole, rtol=1e-3, atol=1e-5)
    merged = weighted_stats(stats[0], counts[0], list(stats[1:]), counts[1:])
    for key in ("losses/total", "losses/policy", "losses/value", "losses/entropy"):
        assert merged[key] == pytest.approx(whole_stats[key], rel=1e-5, abs=1e-7), key


def test_flat_gradients_are_views_that_backward_fills_in_place():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 8, 3).to(memory_format=torch.channels_last)
    params = list(conv.parameters())
    flat = torch.zeros(sum(p.numel() for p in params))
    flat_gradients(params, flat)
    assert conv.weight.grad.stride() == conv.weight.stride()  # channels-last kept
    x = torch.randn(2, 4, 6, 6).to(memory_format=torch.channels_last)
    conv(x).square().sum().backward()
    reference = torch.autograd.grad(conv(x).square().sum(), params)
    for p, g in zip(params, reference):
        start = flat.data_ptr()  # still a view into flat, not a new tensor
        assert start <= p.grad.data_ptr() < start + flat.numel() * flat.element_size()
        torch.testing.assert_close(p.grad, g)
    assert torch.count_nonzero(flat) > 0
    with pytest.raises(ValueError, match="flat gradient holds"):
        flat_gradients(params, torch.zeros(3))


def test_each_process_gets_its_share_of_envs_and_cores():
    cfg = load_config("pong-a2c-tuned", ["algo.processes=4"])
    part = share_of(cfg)
    assert part.env.num_envs == 4 and cfg.env.num_envs == 16
    assert part.env.num_threads == max(1, (os.cpu_count() or 1) // 4)


def test_the_update_tail_runs_on_its_own_thread_count_and_gives_it_back():
    before = torch.get_num_threads()
    other = 1 if before > 1 else 2
    with torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(other):
        raise RuntimeError("a failed step")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("overrides, message", [
    (["env.num_envs=5", "algo.processes=2"], "must be a multiple of algo.processes"),
    (["algo.processes=2", "algo.normalize_advantage=true"], "normalize_advantage"),
    (["algo.name=a3c", "algo.processes=2"], "algo.name=a3c has no 'processes' placement"),
])
def test_settings_it_cannot_honour_are_one_clear_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("cartpole-a2c", overrides)


@pytest.mark.slow
def test_cartpole_learns_with_two_processes_and_resumes_on_one(tmp_path):
    run = tmp_path / "run"
    summary = train("cartpole-a2c", run, overrides=CARTPOLE + ["run.eval_every=0",
                                                               "run.total_steps=60000"],
                    quiet=True)
    assert summary["status"] == "finished"
    assert summary["mean_return_100"] >= 150, summary
    final = load_checkpoint(run / "checkpoints" / "final.safetensors")
    assert "extra.carry.obs" not in final.tensors  # no env state is claimed
    more = train(None, resume=run, overrides=["algo.processes=1",
                                              "run.total_steps=64000"], quiet=True)
    assert more["status"] == "finished" and more["env_steps"] == 64000


def test_episodes_of_every_process_are_recorded_under_its_rank(tmp_path):
    run = tmp_path / "run"
    train("cartpole-a2c", run, overrides=CARTPOLE + ["run.total_steps=4000",
                                                     "env.num_envs=4"], quiet=True)
    with open(run / "episodes.csv") as fh:
        workers = [row["worker"] for row in csv.DictReader(fh)]
    assert set(workers) == {"0", "1"}


def test_pong_trains_with_two_processes(tmp_path):
    summary = train("pong-a2c-tuned", tmp_path / "run", overrides=[
        "algo.processes=2", "env.num_envs=4", "run.total_steps=400", "run.eval_episodes=0",
        "run.log_every=1"], quiet=True)
    assert summary["status"] == "finished" and summary["env_steps"] == 400
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    losses = [float(line.split(",")[header.index("losses/total")]) for line in lines[1:]
              if line.split(",")[header.index("losses/total")]]
    assert losses and all(np.isfinite(losses))


# ---------------------------------------------------------------- faults

def _helper(ppid: int) -> int | None:
    for pid in children(ppid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "a2c-process-1":
                return pid
    return None


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _cli_run(run: Path, *sets: str):
    args = CLI + ["train", "cartpole-a2c", "--run-dir", str(run), "--quiet"]
    for s in CARTPOLE + ["run.total_steps=50000000", "run.checkpoint_every=20",
                         "run.stop_eval_return=100000", *sets]:
        args += ["--set", s]
    return cli_process(args)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["kill", "hang"])
def test_dead_or_hung_process_stops_the_run_and_keeps_the_checkpoints(tmp_path, fault):
    run = tmp_path / "run"
    with _cli_run(run, "run.worker_timeout=5") as proc:
        _wait_for(lambda: len(list((run / "checkpoints").glob("update_*"))) >= 1, 120,
                  "a periodic checkpoint")
        victim = _helper(proc.pid)
        assert victim is not None
        os.kill(victim, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        out, err = proc.communicate(timeout=60)
    assert not running(victim)  # the run leaves no stopped helper behind
    assert proc.returncode == 4, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    expected = "died (exit code -9)" if fault == "kill" else "sent nothing for 5s"
    assert f"A2C process 1 {expected}" in lines[0] and "last good checkpoint" in lines[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed"
    final = load_checkpoint(run / "checkpoints" / "final.safetensors")
    for periodic in (run / "checkpoints").glob("update_*"):  # earlier results still load
        load_checkpoint(periodic)
    assert any(key.startswith("model.") for key in final.tensors)


def test_resume_may_change_processes_and_threads_but_not_the_envs(tmp_path):
    saved = load_config("pong-a2c-tuned")
    check_resume_compatible(saved, load_config("pong-a2c-tuned", [
        "algo.processes=2", "env.num_threads=1"]), tmp_path)
    with pytest.raises(ConfigError, match="env.num_envs was 16 in that run and is 8 now"):
        check_resume_compatible(saved, load_config("pong-a2c-tuned", ["env.num_envs=8"]),
                                tmp_path)
