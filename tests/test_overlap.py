"""Double-buffered rollouts (algo.overlap): the threaded run is exactly SGD with a gradient
delay of one update, real runs learn and resume, and faults in the acting thread stop the
run with one line and the last good parameters."""

from __future__ import annotations

import copy
import json
import signal
import sys

import pytest
import torch
from procs import cli_process, wait_for_metrics
from test_robustness import cli, faulty_run, finite_params, one_error_line

from actorcritic.algorithms.update import (
    clip_and_measure,
    make_optimizer,
    reuses_acting_graph,
    rollout_loss,
)
from actorcritic.cli import main
from actorcritic.config import load_config
from actorcritic.envs import make_vector_env
from actorcritic.envs.actions import ActionAdapter
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.run.checkpoint import load_checkpoint
from actorcritic.samplers.overlap import OverlappedRollouts
from actorcritic.samplers.processes import torch_threads
from actorcritic.samplers.rollout import Carry, RolloutBuffer, collect_rollout
from actorcritic.training import train

CPU = torch.device("cpu")

# A feedforward CNN (replayed acting passes) on Pong, an MLP and an LSTM (recomputed, the
# LSTM from the rollout's start state) on CartPole.
CASES = {
    "pong-cnn": ("pong-a2c-tuned", ["env.num_envs=3", "algo.num_steps=4"]),
    "cartpole-mlp": ("cartpole-a2c", ["env.backend=sync", "env.num_envs=3",
                                      "algo.num_steps=6", "model.shared_trunk=false"]),
    "cartpole-lstm": ("cartpole-masked-lstm-a2c", ["env.backend=sync", "env.num_envs=3",
                                                   "algo.num_steps=6"]),
}


class Learner:
    """What a delayed-gradient A2C needs, built the same way for the threaded run and for
    the plain reference: envs, the trained model, two acting copies' buffers, a carry."""

    def __init__(self, preset: str, overrides: list[str]):
        torch.manual_seed(3)
        self.cfg = load_config(preset, overrides + ["run.device=cpu"])
        self.envs = make_vector_env(self.cfg.env, seed=1, mode="train")
        self.model = ActorCritic(self.envs.single_observation_space,
                                 self.envs.single_action_space, self.cfg.model)
        self.opt = make_optimizer(self.model.parameters(), self.cfg.algo)
        self.params = list(self.model.parameters())
        self.keep_graph = reuses_acting_graph(self.model, self.cfg.algo)
        self.carry = Carry.start(self.envs.reset(seed=1), self.model, CPU)
        self.to_env = ActionAdapter(self.envs.single_action_space)
        self.rng = torch.Generator().manual_seed(7)  # the acting thread's own stream
        self.buffers = tuple(RolloutBuffer(self.cfg.algo.num_steps, self.envs.num_envs,
                                           self.envs.single_observation_space,
                                           self.envs.single_action_space) for _ in range(2))

    def collect(self, model, buf):
        return collect_rollout(self.envs, model, buf, self.carry, self.to_env, True,
                               keep_graph=self.keep_graph, generator=self.rng)

    def loss(self, rollout):
        return rollout_loss(rollout.model, rollout.buffer, self.cfg.algo, with_stats=False,
                            acted=rollout.acted)[0]

    def step(self) -> None:
        clip_and_measure(self.params, self.cfg.algo.max_grad_norm)
        self.opt.step()


def reference_run(learner: Learner, updates: int) -> list[torch.Tensor]:
    """SGD with a gradient delay of one, written out plainly in one thread: rollout k is
    acted (and differentiated) at theta_(k-1) (rollouts 0 and 1 at theta_0), and its
    gradient is applied to theta_k."""
    acting = [copy.deepcopy(learner.model) for _ in range(2)]
    rollouts = [learner.collect(acting[slot], learner.buffers[slot]) for slot in range(2)]
    for k in range(updates):
        slot = k % 2
        loss = learner.loss(rollouts[slot])
        loss.backward()
        for p, a in zip(learner.params, acting[slot].parameters()):
            p.grad, a.grad = a.grad, None
        learner.step()
        with torch.no_grad():
            for a, p in zip(acting[slot].parameters(), learner.params):
                a.copy_(p)
        rollouts[slot] = learner.collect(acting[slot], learner.buffers[slot])  # rollout k + 2
    return [p.detach().clone() for p in learner.params]


def threaded_run(learner: Learner, updates: int) -> list[torch.Tensor]:
    overlap = OverlappedRollouts(learner.model, learner.buffers, learner.collect)
    try:
        for k in range(updates):
            collected = overlap.next()
            assert collected.index == k and collected.version == max(k - 1, 0)
            learner.loss(collected).backward()
            torch.rand(100)  # draws of the training thread (a stochastic evaluation) do not
            overlap.take_gradients(collected)  # change what the acting thread samples
            learner.step()
            overlap.release(collected)
    finally:
        overlap.close()
    return [p.detach().clone() for p in learner.params]


def synchronous_run(learner: Learner, updates: int) -> list[torch.Tensor]:
    for _ in range(updates):
        rollout = learner.collect(learner.model, learner.buffers[0])
        learner.opt.zero_grad()
        learner.loss(rollout).backward()
        learner.step()
    return [p.detach().clone() for p in learner.params]


@pytest.mark.parametrize("case", CASES)
def test_threaded_run_is_sgd_with_a_gradient_delay_of_one_update(case):
    preset, overrides = CASES[case]
    with torch_threads(1):  # the same kernels in both threads and in the reference
        runs = {}
        for name, run in (("reference", reference_run), ("threaded", threaded_run),
                          ("synchronous", synchronous_run)):
            learner = Learner(preset, overrides)
            try:
                runs[name] = run(learner, 6)
            finally:
                learner.envs.close()
    for ref, got in zip(runs["reference"], runs["threaded"]):
        assert torch.equal(ref, got)
    # The delay is real: plain synchronous A2C from the same start ends elsewhere.
    assert not all(torch.equal(a, b) for a, b in zip(runs["reference"], runs["synchronous"]))


def test_an_error_in_the_acting_thread_is_raised_by_next():
    learner = Learner(*CASES["cartpole-mlp"])

    def collect(model, buf):
        raise RuntimeError("emulator on fire")

    overlap = OverlappedRollouts(learner.model, learner.buffers, collect)
    try:
        with pytest.raises(RuntimeError, match="emulator on fire"):
            overlap.next()
    finally:
        overlap.close()
        learner.envs.close()
    assert not overlap._thread.is_alive()


def test_cartpole_learns_with_overlap(tmp_path):
    cfg = load_config("cartpole-a2c", ["algo.overlap=true", "run.eval_episodes=20"])
    summary = train(cfg, tmp_path / "run", quiet=True)
    assert summary["eval"]["mean_return"] >= 475, summary


@pytest.mark.slow
def test_pong_runs_overlapped_resumes_and_keeps_float32_checkpoints(tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["algo.overlap=true", "model.precision=bfloat16", "env.num_envs=4",
                 "run.total_steps=2000", "run.eval_episodes=0", "run.log_every=5"]
    summary = train(load_config("pong-a2c-tuned", overrides), run_dir, quiet=True)
    assert summary["env_steps"] == 2000
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [float(r.split(",")[header.index("losses/total")]) for r in rows[1:]]
    assert losses and all(abs(v) < 1e3 for v in losses)
    ckpt = load_checkpoint(run_dir / "checkpoints" / "final.safetensors")
    assert finite_params(ckpt)
    assert all(t.dtype == torch.float32 for t in ckpt.section("model").values())
    rc = main(["train", "--resume", str(run_dir), "--quiet", "--set", "run.total_steps=3000"])
    assert rc == 0
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 3000


@pytest.mark.parametrize("kind, what", [("nan_obs", "observation"), ("inf_reward", "reward")])
def test_non_finite_env_output_in_the_acting_thread_keeps_last_good_policy(tmp_path, capsys,
                                                                           kind, what):
    # env index 1 turns bad at its 31st step: rollout 4 (8 steps each), step 6; the
    # learner has made the 3 updates of rollouts 1-3 when the error reaches it
    overlap = ["--set", "algo.overlap=true"]
    rc, err = faulty_run(capsys, tmp_path / "bad", f"{{kind: {kind}, after: 30, bad_seed: 6}}",
                         100_000, *overlap)
    line = one_error_line(err)
    assert rc == 3
    assert f"non-finite {what} from the environment at env index 1, rollout step 6" in line
    ckpt = load_checkpoint(tmp_path / "bad" / "checkpoints" / "final.safetensors")
    assert ckpt.meta["counters"]["updates"] == 3 and finite_params(ckpt)
    # exactly the parameters of the same overlapped run without the fault after 3 updates
    rc, err = faulty_run(capsys, tmp_path / "good", "{kind: ''}", 48, *overlap)
    assert rc == 0, err
    good = load_checkpoint(tmp_path / "good" / "checkpoints" / "final.safetensors")
    for key, value in good.section("model").items():
        assert torch.equal(ckpt.section("model")[key], value), key


def test_env_exception_in_the_acting_thread_is_one_line(tmp_path, capsys):
    rc, err = faulty_run(capsys, tmp_path / "run", "{kind: raise, after: 3, bad_seed: 6}",
                         100_000, "--set", "algo.overlap=true")
    line = one_error_line(err)
    assert rc == 2
    assert "env 'Faulty-v0' index 1 raised ValueError in step(): sensor unplugged at step 4" \
        in line, line


@pytest.mark.parametrize("overrides, expected", [
    (["algo.name=a3c"], "algo.name=a3c has no 'overlap' placement on local"),
    (["algo.processes=2"], "algo.overlap and algo.processes > 1 are two ways to use the cores"),
])
def test_config_errors_are_one_line(tmp_path, capsys, overrides, expected):
    sets = [a for o in overrides for a in ("--set", o)]
    rc, err = cli(capsys, "train", "cartpole-a2c", "--run-dir", tmp_path / "run",
                  "--set", "algo.overlap=true", *sets)
    assert rc == 2
    assert expected in one_error_line(err)
    assert not (tmp_path / "run").exists()


def test_ctrl_c_stops_the_acting_thread_and_writes_final(tmp_path):
    run_dir = tmp_path / "run"
    with cli_process([sys.executable, "-m", "actorcritic.cli", "train", "cartpole-a2c",
                      "--run-dir", str(run_dir), "--set", "algo.overlap=true",
                      "run.total_steps=100000000", "run.stop_eval_return=null",
                      "run.eval_every=0", "run.eval_episodes=0"]) as proc:
        wait_for_metrics(proc, run_dir)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    ckpt = load_checkpoint(run_dir / "checkpoints" / "final.safetensors")
    assert ckpt.meta["counters"]["env_steps"] == summary["env_steps"] > 0
