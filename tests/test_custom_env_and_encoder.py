"""The user's own env factory and encoder class from Python (docs/CUSTOM.md): a run trains
with both, records their import paths, and loading imports the encoder class back; code a
checkpoint names but that cannot be imported, or that is not a class of the right kind,
is refused in one line."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from custom_envs import SignEnv, TinyEncoder, make_sign_env
from torch import nn

import actorcritic
from actorcritic import importpath
from actorcritic.cli import main as cli_main
from actorcritic.config import load_config
from actorcritic.envs import make_vector_env, spaces_for
from actorcritic.errors import CheckpointError, ConfigError, EnvError
from actorcritic.models.actor_critic import build_model
from actorcritic.run.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent
SMALL_PPO = ["env.num_envs=4", "algo.num_steps=32", "algo.epochs=4", "run.eval_every=0",
             "run.stop_eval_return=null"]


def ppo(steps: int, *more: str):
    return load_config("cartpole-ppo", [*SMALL_PPO, f"run.total_steps={steps}", *more])


@pytest.fixture
def fresh_process(monkeypatch):
    """Forget what train() remembered in this process: loading must import by path, as
    another process does."""
    monkeypatch.setattr(importpath, "_remembered", {})


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("custom") / "sign"
    summary = actorcritic.train(ppo(2048, "run.eval_episodes=10"), run_dir, quiet=True,
                                env_fn=make_sign_env, encoder=TinyEncoder)
    return run_dir, summary


def one_line_error(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_trains_ppo_with_own_env_and_encoder_and_records_their_paths(own_run):
    run_dir, summary = own_run
    assert summary["status"] == "finished" and summary["env_id"] == "custom_envs:make_sign_env"
    assert summary["eval"]["mean_return"] >= 8  # a random policy scores 5 of 10
    meta = load_checkpoint(run_dir / "checkpoints" / "final.safetensors").meta
    assert meta["config"]["model"]["encoder"] == "custom_envs:TinyEncoder"
    assert meta["config"]["env"]["id"] == "custom_envs:make_sign_env"
    assert meta["config"]["env"]["backend"] == "sync"  # the preset's vector backend is not
    assert "custom_envs:TinyEncoder" in (run_dir / "config.yaml").read_text()


def test_load_imports_the_encoder_and_plays_as_the_trained_model(own_run, tmp_path,
                                                                 fresh_process):
    run_dir, summary = own_run
    final = run_dir / "checkpoints" / "final.safetensors"
    with pytest.raises(CheckpointError) as excinfo:  # a function factory is not called
        actorcritic.load(final)
    assert "env_fn=" in one_line_error(excinfo)
    agent = actorcritic.load(final, env_fn=make_sign_env)
    assert type(agent.model.actor_trunk.encoder) is TinyEncoder
    cfg = agent.cfg
    # The trained model's final evaluation, replayed: same episodes, same returns.
    assert agent.evaluate(episodes=10, seed=cfg.run.seed + 10_000) == summary["eval"]
    obs = np.array([[1.0, 0.3], [-1.0, 0.3], [1.0, -0.9], [-1.0, -0.9]], np.float32)
    actions, state = agent.act(obs)
    assert state is None and actions.tolist() == [1, 0, 1, 0]
    assert [int(agent.act(o)[0]) for o in obs] == actions.tolist()
    env = agent.make_env()
    first, _ = env.reset(seed=0)
    assert int(agent.act(first)[0]) == int(first[0] > 0)
    env.close()
    [(video, frames, ret)] = agent.record_video(tmp_path, episodes=1)  # render_mode from it
    assert video.stat().st_size > 0 and (frames, ret) == (11, 10.0)


def test_actorcritic_eval_builds_a_recorded_env_class_and_encoder(own_run, tmp_path, capsys,
                                                                  fresh_process):
    run_dir, _ = own_run
    ckpt = load_checkpoint(run_dir / "checkpoints" / "final.safetensors")
    meta = json.loads(json.dumps(ckpt.meta))
    meta["config"]["env"]["id"] = "custom_envs:SignEnv"  # the same env, as its class
    save_checkpoint(tmp_path / "class.safetensors", ckpt.tensors, meta)
    assert cli_main(["eval", str(tmp_path / "class.safetensors"), "--episodes", "3",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_return"] >= 8
    assert cli_main(["eval", str(run_dir), "--episodes", "1"]) == 2  # a function factory
    assert "actorcritic.load(..., env_fn=...)" in capsys.readouterr().err


@pytest.mark.parametrize("section, key, value, says", [
    ("model", "encoder", "no_such_module_xyz:Encoder", "could not be imported"),
    ("model", "encoder", "custom_envs:NoSuchEncoder", "has no 'NoSuchEncoder'"),
    ("model", "encoder", "custom_envs:test.<locals>.Encoder", "no name another process"),
    ("model", "encoder", "os:system", "not an nn.Module class"),
    ("env", "id", "os:system", "loading calls no function a checkpoint names"),
    ("env", "id", "custom_envs:f.<locals>.<lambda>", "no name another process"),
])
def test_a_checkpoint_naming_code_it_cannot_import_is_refused(own_run, tmp_path, monkeypatch,
                                                               section, key, value, says):
    run_dir, _ = own_run
    ckpt = load_checkpoint(run_dir / "checkpoints" / "final.safetensors")
    meta = json.loads(json.dumps(ckpt.meta))
    meta["config"][section][key] = value
    save_checkpoint(tmp_path / "named.safetensors", ckpt.tensors, meta)
    monkeypatch.setattr(os, "system", lambda *a, **k: pytest.fail("os.system was called"))
    with pytest.raises(CheckpointError) as excinfo:
        actorcritic.load(tmp_path / "named.safetensors")
    assert says in one_line_error(excinfo)
    assert str(tmp_path / "named.safetensors") in str(excinfo.value)


def test_a_lambda_and_a_local_encoder_train_and_the_run_says_how_to_load_them(
        tmp_path, capsys, fresh_process):
    class LocalEncoder(nn.Module):
        def __init__(self, observation_space):
            super().__init__()
            self.linear = nn.Linear(observation_space.shape[0], 8)
            self.out_size = 8

        def forward(self, obs):
            return torch.relu(self.linear(obs))

    run_dir = tmp_path / "lambda"
    summary = actorcritic.train(ppo(256, "env.backend=async", "run.eval_episodes=2"), run_dir,
                                env_fn=lambda: SignEnv(length=5), encoder=LocalEncoder)
    out = capsys.readouterr()
    lines = (out.out + out.err).splitlines()
    assert summary["status"] == "finished" and summary["eval"]["mean_length"] == 5
    env_id = summary["env_id"]
    assert env_id.endswith(".<locals>.<lambda>")
    assert any(f"env factory '{env_id}' has no importable name: the agent can be loaded only "
               f"with the same factory passed again" in line for line in lines), lines
    assert any("LocalEncoder' has no importable name" in line for line in lines), lines
    agent = actorcritic.load(run_dir)  # this process remembers both
    assert type(agent.model.actor_trunk.encoder) is LocalEncoder
    importpath._remembered.clear()  # another process: both must be passed again
    with pytest.raises(CheckpointError, match="no name another process can import"):
        actorcritic.load(run_dir)
    again = actorcritic.load(run_dir, env_fn=lambda: SignEnv(length=5), encoder=LocalEncoder)
    obs = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)
    assert again.act(obs)[0].tolist() == agent.act(obs)[0].tolist()
    assert again.evaluate(episodes=2)["mean_length"] == 5
    resumed = actorcritic.train(resume=run_dir, overrides=["run.total_steps=384"], quiet=True,
                                env_fn=lambda: SignEnv(length=5), encoder=LocalEncoder)
    assert resumed["status"] == "finished" and resumed["env_steps"] == 384


def test_unnamed_code_is_refused_where_another_process_would_need_it(tmp_path):
    for algo in (["algo.name=a3c"], ["algo.processes=2", "algo.normalize_advantage=false"]):
        cfg = load_config("cartpole-a2c", algo)
        with pytest.raises(ConfigError) as excinfo:
            actorcritic.train(cfg, tmp_path / "refused", env_fn=lambda: SignEnv())
        assert "works with the placements that run in this process" in one_line_error(excinfo)
    assert not (tmp_path / "refused").exists()


def test_config_keys_name_the_env_factory_and_encoder():
    cfg = load_config("cartpole-ppo", ["env.id=custom_envs:make_sign_env",
                                       "model.encoder=custom_envs:TinyEncoder",
                                       "model.encoder_kwargs={hidden: 8}", "env.kwargs={length: 3}",
                                       "env.backend=sync"])
    obs_space, action_space = spaces_for(cfg)
    model = build_model(cfg, obs_space, action_space)
    assert model.actor_trunk.encoder.out_size == 8 and model.critic_trunk is not None
    with pytest.raises(ConfigError, match="must be one of auto, mlp, nature_cnn, small_cnn or "
                                          "module:Class; got 'tiny'"):
        load_config("cartpole-ppo", ["model.encoder=tiny"])
    with pytest.raises(ConfigError, match="model.encoder_kwargs is for an encoder given as"):
        load_config("cartpole-ppo", ["model.encoder_kwargs={hidden: 8}"])
    with pytest.raises(EnvError, match="has no 'make_nothing'"):
        spaces_for(load_config("cartpole-a2c", ["env.id=custom_envs:make_nothing"]))
    vector = load_config("cartpole-ppo", ["env.id=custom_envs:SignEnv"]).env
    with pytest.raises(EnvError, match="env.backend=vector is for Gymnasium and EnvPool ids"):
        make_vector_env(vector, num_envs=1)  # train() says so and uses sync instead


class NoSize(nn.Module):
    def __init__(self, observation_space):
        super().__init__()


class WrongSize(TinyEncoder):
    def forward(self, obs):
        return super().forward(obs)[:, :3]


@pytest.mark.parametrize("encoder, says", [
    (NoSize, "must set self.out_size"),
    (WrongSize, "must return float32 [batch, 16]"),
    (make_sign_env, "encoder must be an nn.Module class"),
])
def test_an_encoder_that_breaks_the_contract_is_one_line_at_start(tmp_path, encoder, says):
    with pytest.raises(ConfigError) as excinfo:
        actorcritic.train(ppo(256), tmp_path / "bad", env_fn=make_sign_env, encoder=encoder)
    assert says in one_line_error(excinfo)
    assert not (tmp_path / "bad").exists()


def test_the_custom_docs_snippet_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "docs" / "CUSTOM.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert "total_steps\": 20_000" in code
    code = code.replace("total_steps\": 20_000", "total_steps\": 1_024")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/CUSTOM.md", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert "final evaluation:" in out and "first action:" in out
    assert (tmp_path / "runs" / "corridor" / "checkpoints" / "final.safetensors").is_file()
