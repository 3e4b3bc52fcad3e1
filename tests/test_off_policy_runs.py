"""SAC and TD3 as whole runs: resume bit for bit with the replay buffer in the checkpoint
(and, without it, one line that says so), what a trained agent does (load().act, eval,
ONNX export checked in ONNX Runtime), and learning: pendulum-sac's greedy evaluation
reaches -200 within the preset's budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from actorcritic import load, train
from actorcritic.run.checkpoint import load_checkpoint

# Pendulum with a small network and early learning: a few seconds per run.
SMALL = ["model.hidden_sizes=[32,32]", "algo.learning_starts=200", "algo.batch_size=32",
         "run.eval_episodes=0", "run.eval_every=0", "run.log_every=50",
         "run.checkpoint_every=0"]


def final(run_dir: Path):
    return load_checkpoint(run_dir / "checkpoints" / "final.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("algo, precision", [("sac", "float32"), ("td3", "float32"),
                                             ("sac", "bfloat16")])
def test_resume_with_the_replay_buffer_is_bit_exact(tmp_path, algo, precision):
    """Train N, resume to 2N == 2N uninterrupted: every parameter, target network, optimizer
    moment and replay row (Pendulum is captured exactly: envs/snapshot.py); also with the
    matrix products in bfloat16, which are as deterministic as float32's."""
    n, sets = 600, SMALL + [f"algo.name={algo}", f"model.precision={precision}"]
    full = train("pendulum-sac", tmp_path / "full", quiet=True,
                 overrides=sets + [f"run.total_steps={2 * n}"])
    train("pendulum-sac", tmp_path / "half", quiet=True,
          overrides=sets + [f"run.total_steps={n}"])
    resumed = train(resume=tmp_path / "half", quiet=True,
                    overrides=[f"run.total_steps={2 * n}"])
    a, b = final(tmp_path / "full"), final(tmp_path / "half")
    assert a.tensors.keys() == b.tensors.keys()
    assert any(k.startswith("replay.") for k in a.tensors)
    assert any(k.startswith("learner.target") for k in a.tensors)
    for key in a.tensors:
        assert torch.equal(a.tensors[key], b.tensors[key]), key
    # 1,200 steps of 200-step episodes: 6 episodes, and the 5 reset steps between them are
    # not transitions
    assert a.meta["replay"] == b.meta["replay"] == {"pos": 2 * n - 5, "size": 2 * n - 5}
    assert resumed["env_steps"] == full["env_steps"] == 2 * n
    assert resumed["mean_return_100"] == full["mean_return_100"]


@pytest.mark.slow
def test_without_the_buffer_checkpoints_are_small_and_resume_says_so(tmp_path, capsys):
    sets = SMALL + ["algo.replay_in_checkpoint=false", "run.total_steps=400"]
    train("pendulum-sac", tmp_path / "run", overrides=sets)
    assert not any(k.startswith("replay.") for k in final(tmp_path / "run").tensors)
    capsys.readouterr()
    summary = train(resume=tmp_path / "run", overrides=["run.total_steps=800"])
    out = capsys.readouterr().out
    assert "the checkpoint holds no replay buffer (algo.replay_in_checkpoint=false)" in out
    assert summary["env_steps"] == 800


@pytest.mark.slow
def test_the_best_checkpoint_holds_the_agent_but_no_buffer(tmp_path):
    train("pendulum-sac", tmp_path / "run", quiet=True,
          overrides=SMALL + ["run.total_steps=600", "run.eval_every=300",
                             "run.eval_during_episodes=1"])
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")
    assert not any(k.startswith("replay.") for k in best.tensors)
    assert any(k.startswith("replay.") for k in final(tmp_path / "run").tensors)


@pytest.fixture(scope="module", params=["sac", "td3"])
def trained(request, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    train("pendulum-sac", run_dir, quiet=True,
          overrides=SMALL + [f"algo.name={request.param}", "run.total_steps=400"])
    return run_dir


@pytest.mark.slow
def test_a_trained_agent_acts_deterministically_within_the_box(trained):
    agent = load(trained)
    env = agent.make_env()
    obs, _ = env.reset(seed=0)
    action, state = agent.act(obs)
    assert action.shape == (1,) and state is None and -2.0 <= action[0] <= 2.0
    assert np.array_equal(action, agent.act(obs)[0])
    batch, _ = agent.act(np.stack([obs, obs * 0.5]))
    # A row of a batch acts as the observation alone does, to float rounding: one row and
    # two run different matrix kernels (on AVX-512 hosts they differ in the last bit).
    assert batch.shape == (2, 1)
    np.testing.assert_allclose(batch[0], action, rtol=1e-6, atol=1e-7)
    result = agent.evaluate(episodes=2)
    assert result["episodes"] == 2 and result["mean_length"] == 200


@pytest.mark.slow
def test_the_exported_actor_matches_torch_in_onnx_runtime(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from actorcritic.export import export_checkpoint

    result = export_checkpoint(trained, tmp_path / "agent.onnx")
    assert result.outputs == ["value float32 [N]", "action float32 [N, 1]"]
    agent = load(trained)
    session = ort.InferenceSession(str(tmp_path / "agent.onnx"),
                                   providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)
    value, action = session.run(["value", "action"], {"obs": obs})
    want, _ = agent.act(obs)
    assert np.abs(action - want).max() < 1e-5
    with torch.no_grad():
        _, want_value = agent.model(torch.as_tensor(obs))
    assert np.allclose(value, want_value.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_pendulum_sac_learns_within_its_budget(tmp_path):
    """The preset's bar, on one seed in the suite (3 seeds: docs/BENCHMARKS.md): a greedy
    evaluation of 10 episodes reaches -200 within 20k env steps. It stops at the first."""
    summary = train("pendulum-sac", tmp_path / "run", quiet=True,
                    overrides=["run.stop_eval_return=-200", "run.eval_episodes=0"])
    assert summary["stop_reason"] == "stop_eval_return", summary
    assert summary["env_steps"] <= 20_000


@pytest.mark.slow
def test_eval_video_report_and_plot_take_an_off_policy_run(trained, tmp_path, capsys):
    import json

    from actorcritic.cli import main

    assert main(["eval", str(trained), "--episodes", "1", "--json",
                 "--video", str(tmp_path / "v")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 1 and result["mean_length"] == 200
    assert (tmp_path / "v" / "episode_000.mp4").stat().st_size > 1000
    assert main(["report", str(trained)]) == 0
    assert "pendulum-sac" in capsys.readouterr().out
    assert main(["plot", str(trained), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000
