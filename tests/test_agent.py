"""`actorcritic.load`: the Agent acts as `actorcritic eval` does, its env passes Gymnasium's
checker, and the README's example runs as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import actorcritic
from actorcritic.config import load_config
from actorcritic.envs.atari import atari_game, make_atari_env
from actorcritic.errors import CheckpointError, UserError

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "actorcritic.cli"]


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("agent") / "cp"
    cfg = load_config("cartpole-a2c", ["run.total_steps=12000", "run.eval_episodes=0"])
    actorcritic.train(cfg, run_dir, quiet=True)
    return run_dir


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("agent") / "lstm"
    cfg = load_config("cartpole-masked-lstm-a2c", ["run.total_steps=4000", "run.eval_episodes=0"])
    actorcritic.train(cfg, run_dir, quiet=True)
    return run_dir


def play(agent, seed: int) -> tuple[float, int, list]:
    """One episode on agent.make_env(), carrying the state as a user would."""
    env = agent.make_env()
    obs, _ = env.reset(seed=seed)
    state, total, steps, done, actions = None, 0.0, 0, False, []
    while not done:
        action, state = agent.act(obs, state)
        actions.append(int(action))
        obs, reward, terminated, truncated, _ = env.step(action)
        total, steps, done = total + float(reward), steps + 1, terminated or truncated
    env.close()
    return total, steps, actions


def cli_eval(target, seed: int, mode: str | None = None) -> dict:
    out = subprocess.run(CLI + ["eval", str(target), "--episodes", "1", "--seed", str(seed),
                                "--json", *([mode] if mode else [])], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("which", ["cartpole_run", "lstm_run"])
def test_act_plays_the_episode_actorcritic_eval_plays(which, request):
    run_dir = request.getfixturevalue(which)
    agent = actorcritic.load(run_dir)
    total, steps, _ = play(agent, seed=4321)
    ev = cli_eval(run_dir, seed=4321)
    assert (total, steps) == (ev["mean_return"], ev["mean_length"])
    assert agent.evaluate(episodes=1, seed=4321)["mean_return"] == ev["mean_return"]


def test_a_sampling_run_is_evaluated_by_sampling_and_the_same_seed_plays_the_same_games(
        tmp_path):
    run_dir = tmp_path / "sampled"
    cfg = load_config("cartpole-a2c", ["run.total_steps=4000", "run.eval_episodes=0",
                                       "run.eval_greedy=false"])
    actorcritic.train(cfg, run_dir, quiet=True)
    agent = actorcritic.load(run_dir)
    assert not agent.evaluates_greedy
    torch.manual_seed(0)
    before = torch.get_rng_state()
    sampled = agent.evaluate(episodes=3, seed=99)
    assert torch.equal(torch.get_rng_state(), before), "evaluation drew from the global stream"
    assert agent.evaluate(episodes=3, seed=99) == sampled
    assert agent.evaluate(episodes=3, seed=99, deterministic=False) == sampled
    out = subprocess.run(CLI + ["eval", str(run_dir), "--episodes", "3", "--seed", "99",
                                "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["mean_return"] == sampled["mean_return"]
    assert cli_eval(run_dir, seed=99, mode="--greedy")["mean_return"] == \
        agent.evaluate(episodes=1, seed=99, deterministic=True)["mean_return"]


def test_act_takes_one_observation_or_a_batch(cartpole_run):
    agent = actorcritic.load(cartpole_run / "checkpoints" / "best.safetensors")
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    batch, state = agent.act(obs)
    assert state is None and batch.shape == (6,)
    assert [int(agent.act(o)[0]) for o in obs] == batch.tolist()
    with torch.no_grad():
        logits, _, _ = agent.model(torch.as_tensor(obs)[None], torch.ones(1, 6, dtype=bool), ())
    assert batch.tolist() == logits[0].argmax(-1).tolist()
    with pytest.raises(UserError, match="does not match the agent's observation space"):
        agent.act(np.zeros(3, np.float32))


def test_recurrent_state_is_carried_by_the_caller(lstm_run):
    agent = actorcritic.load(lstm_run)
    env = agent.make_env()
    obs, _ = env.reset(seed=3)
    seq = [obs]
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
        seq.append(obs)
    state = None
    stepped = []
    for o in seq:
        action, state = agent.act(o, state, deterministic=True)
        stepped.append(int(action))
    assert state is not None and all(s.shape[-1] == agent.cfg.model.core_size for s in state)
    with torch.no_grad():  # the same sequence in one time-major call
        params, _, _ = agent.model(torch.as_tensor(np.stack(seq))[:, None],
                                   torch.tensor([True] + [False] * 5)[:, None],
                                   agent.model.initial_state(1))
    assert stepped == params[:, 0].argmax(-1).tolist()
    # A batch where member 1 starts a new episode: its state is reset, member 0's is not.
    state2 = tuple(torch.cat([s, s], dim=-2) for s in state)
    both = np.stack([seq[-1], seq[-1]])
    _, after = agent.act(both, state2, episode_start=[False, True])
    _, fresh = agent.act(seq[-1][None], None)
    _, carried = agent.act(seq[-1][None], state)
    for a, f, c in zip(after, fresh, carried):
        assert torch.allclose(a[..., 1:2, :], f, atol=1e-6)  # batched matmuls round apart
        assert torch.allclose(a[..., 0:1, :], c, atol=1e-6)
        assert not torch.allclose(f, c, atol=1e-3)


@pytest.mark.parametrize("preset", ["pong-a2c-tuned", "kungfu-lstm-a2c"])
@pytest.mark.parametrize("train", [False, True])
def test_atari_envs_pass_gymnasiums_checker(preset, train):
    cfg = load_config(preset).env
    env = make_atari_env(cfg, atari_game(cfg.id), train=train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "is different from the unwrapped version"
        check_env(env)
    # the wrappers record their arguments: the stack can be rebuilt from its spec
    assert [w.name for w in env.spec.additional_wrappers][-1] in ("FrameStack", "ClipReward")
    env.close()


def test_make_env_passes_gymnasiums_checker(cartpole_run):
    env = actorcritic.load(cartpole_run).make_env()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CartPole's infinite bounds
        check_env(env)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        actorcritic.load(tmp_path / "nothing-here")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a safetensors file|truncated"):
        actorcritic.load(bad)
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        (tmp_path / "empty-run").mkdir()
        actorcritic.load(tmp_path / "empty-run")


def test_readme_example_runs_as_written(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- AGENT-EXAMPLE:BEGIN -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README.md lost its agent example"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 14
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    total, mean = (float(v) for v in out.stdout.split()[-2:])
    assert total >= 100 and mean >= 100  # a CartPole agent that learned something
