"""Observation and reward normalization: the statistics against plain computations, and
their life in checkpoints, resume, evaluation and trained agents."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import actorcritic
from actorcritic import train
from actorcritic.algorithms.reward_scaling import ReturnScale
from actorcritic.config import load_config
from actorcritic.errors import ConfigError
from actorcritic.models.normalize import ObsNormalizer
from actorcritic.run.checkpoint import load_checkpoint
from actorcritic.run.evaluate import evaluate_policy

NORMALIZED = ["model.normalize_obs=true", "algo.normalize_reward=true", "env.backend=sync",
              "env.num_envs=4", "algo.num_steps=16", "algo.epochs=2", "algo.minibatches=2",
              "run.eval_episodes=0", "run.eval_every=0", "run.log_every=5",
              "algo.lr_schedule=constant", "algo.clip_schedule=constant"]  # resumable as is


def test_observation_statistics_equal_the_plain_mean_and_variance():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 5)) for n in (7, 1, 40, 13)]
    norm = ObsNormalizer((5,), clip=10.0)
    for b in batches:
        norm.update(torch.from_numpy(b))
    data = np.concatenate(batches)
    # the prior: 1e-4 pseudo-samples of mean 0 and variance 1
    n, prior = len(data), 1e-4
    mean = data.sum(0) / (n + prior)
    var = (((data - mean) ** 2).sum(0) + prior * (1.0 + mean ** 2)) / (n + prior)
    np.testing.assert_allclose(norm.mean.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), var, rtol=1e-10)
    x = torch.tensor(rng.normal(3.0, 2.0, size=(3, 5)), dtype=torch.float32)
    want = np.clip((x.numpy() - mean) / np.sqrt(var + 1e-8), -10, 10)
    np.testing.assert_allclose(norm(x).numpy(), want, rtol=1e-5, atol=1e-5)


def test_observations_are_clipped():
    norm = ObsNormalizer((2,), clip=5.0)
    norm.update(torch.zeros(100, 2) + torch.tensor([[0.0, 1.0]]).repeat(50, 1).repeat(2, 1))
    out = norm(torch.tensor([[1e6, -1e6]]))
    assert out.tolist() == [[5.0, -5.0]]


def test_return_scaling_equals_a_plain_loop():
    rng = np.random.default_rng(1)
    gamma, steps, n = 0.99, 300, 3
    rewards = rng.normal(0.5, 3.0, size=(steps, n))
    dones = rng.random((steps, n)) < 0.05
    scaler = ReturnScale(n, gamma, clip=10.0)
    no = np.zeros(n, dtype=bool)
    got = np.stack([scaler(rewards[t], dones[t], no) for t in range(steps)])
    # reference: every return ever seen, variance over all of them (plus the prior)
    returns, seen, want = np.zeros(n), [], []
    for t in range(steps):
        returns = returns * gamma + rewards[t]
        seen.extend(returns.tolist())
        data = np.array(seen)
        prior = 1e-4
        mean = data.sum() / (len(data) + prior)
        var = (((data - mean) ** 2).sum() + prior * (1.0 + mean ** 2)) / (len(data) + prior)
        want.append(np.clip(rewards[t] / np.sqrt(var + 1e-8), -10, 10))
        returns[dones[t]] = 0.0
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-5)


def test_statistics_are_in_the_checkpoint_and_resume_is_bit_exact(tmp_path):
    """PPO with both normalizations: train N, resume to 2N == 2N uninterrupted, every model
    tensor (the observation statistics included) and the reward statistics."""
    n = 1024
    train("cartpole-ppo", tmp_path / "full", quiet=True,
          overrides=NORMALIZED + [f"run.total_steps={2 * n}"])
    train("cartpole-ppo", tmp_path / "half", quiet=True,
          overrides=NORMALIZED + [f"run.total_steps={n}"])
    train(resume=tmp_path / "half", quiet=True, overrides=[f"run.total_steps={2 * n}"])
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "final.safetensors")
    b = load_checkpoint(tmp_path / "half" / "checkpoints" / "final.safetensors")
    assert "model.obs_norm.mean" in a.tensors and float(a.tensors["model.obs_norm.count"]) > n
    assert a.tensors["model.obs_norm.count"].dtype == torch.float64
    for key in a.tensors:
        if key.startswith(("model.", "extra.reward_norm.")):
            assert torch.equal(a.tensors[key], b.tensors[key]), key


def test_evaluation_and_trained_agents_use_the_frozen_statistics(tmp_path):
    train("cartpole-ppo", tmp_path / "run", quiet=True,
          overrides=NORMALIZED + ["run.total_steps=1024"])
    agent = actorcritic.load(tmp_path / "run")
    norm = agent.model.obs_norm
    assert float(norm.count) > 500  # trained statistics (of the checkpoint load() picks)
    before = {k: v.clone() for k, v in agent.model.state_dict().items()}
    evaluate_policy(agent.model, agent.cfg.env, 3, greedy=True, seed=5)
    agent.evaluate(episodes=2)
    for key, value in agent.model.state_dict().items():
        assert torch.equal(value, before[key]), key  # evaluation changes nothing
    obs = np.array([[0.01, 0.5, -0.02, -0.4]], dtype=np.float32)
    action, _ = agent.act(obs)
    with torch.no_grad():
        x = ((torch.from_numpy(obs) - norm.mean.float()) / (norm.var.float() + 1e-8).sqrt())
        features = agent.model.actor_trunk(x.clamp(-10, 10)[None], torch.zeros(1, 1,
                                           dtype=torch.bool), ())[0]
        want = agent.model.policy(features)[0].argmax(-1)
    assert int(action[0]) == int(want[0])


def test_a2c_normalizes_too_and_says_why_numpy_acting_is_off(tmp_path, capsys):
    """The NumPy accelerators, asked for, are refused for a normalized model, saying why."""
    summary = train("cartpole-a2c", tmp_path / "run", overrides=[
        "model.normalize_obs=true", "run.total_steps=2000", "run.eval_episodes=0",
        "run.eval_every=0", "run.numpy_acting=true", "run.numpy_update=true"])
    assert summary["status"] == "finished"
    out = capsys.readouterr()
    assert "without model.normalize_obs" in out.out + out.err
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "final.safetensors")
    assert float(ckpt.tensors["model.obs_norm.count"]) > 1000


@pytest.mark.parametrize("preset,sets,match", [
    ("cartpole-a3c", ["model.normalize_obs=true"], "model.normalize_obs is for A2C and PPO"),
    ("cartpole-impala", ["algo.normalize_reward=true"], "algo.normalize_reward is for A2C"),
    ("cartpole-a2c", ["algo.normalize_reward=true", "algo.reward_scale=0.1"], "choose one"),
    ("cartpole-a2c", ["model.normalize_obs=true", "algo.processes=2"], "in one process"),
])
def test_placements_without_the_statistics_are_refused(preset, sets, match):
    with pytest.raises(ConfigError, match=match):
        load_config(preset, overrides=sets)


def test_image_observations_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ConfigError, match="model.normalize_obs is for vector observations"):
        train("pong-a2c-tuned", tmp_path / "run", quiet=True, overrides=[
            "model.normalize_obs=true", "run.total_steps=100"])
    assert not (tmp_path / "run").exists()


def test_init_from_carries_the_statistics(tmp_path):
    train("cartpole-ppo", tmp_path / "first", quiet=True,
          overrides=NORMALIZED + ["run.total_steps=1024"])
    train("cartpole-ppo", tmp_path / "second", quiet=True,
          init_from=tmp_path / "first" / "checkpoints" / "final.safetensors",
          overrides=NORMALIZED + ["run.total_steps=64", "algo.num_steps=16"])
    first = load_checkpoint(tmp_path / "first" / "checkpoints" / "final.safetensors")
    second = load_checkpoint(tmp_path / "second" / "checkpoints" / "final.safetensors")
    count = float(first.tensors["model.obs_norm.count"])
    # the second run started from the first's statistics and added its own 64 steps
    assert float(second.tensors["model.obs_norm.count"]) == pytest.approx(count + 64)
