"""MuJoCo v5 through the whole pipeline: PPO with normalization on Hopper, evaluation and an
MP4 on a machine without a display (OSMesa), and the one line where no OpenGL works."""

from __future__ import annotations

import os
import subprocess
import sys

import imageio.v2 as imageio
import pytest

from actorcritic import train
from actorcritic.envs.mujoco_gl import is_mujoco

QUICK = ["run.total_steps=2048", "algo.num_steps=1024", "algo.epochs=2",
         "algo.minibatches=4", "run.eval_episodes=1", "run.eval_every=0",
         "run.checkpoint_every=1", "run.log_every=1", "env.max_episode_steps=200"]


def osmesa_missing() -> bool:
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True)
    return "libOSMesa.so" not in out.stdout


@pytest.fixture(scope="module")
def hopper_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("hopper") / "run"
    summary = train("hopper-ppo", run_dir, quiet=True, overrides=QUICK)
    assert summary["status"] == "finished" and summary["env_steps"] == 2048
    return run_dir


def test_mujoco_ids_are_recognized():
    assert is_mujoco("Hopper-v5") and is_mujoco("HalfCheetah-v5")
    assert not is_mujoco("CartPole-v1") and not is_mujoco("NoSuchEnv-v0")


def test_hopper_ppo_trains_with_normalization(hopper_run):
    """Two updates of 1024 steps: the second changes every weight, its losses are finite, and
    the observation and reward statistics grew by exactly the 1024 steps in between."""
    import csv
    import math

    import torch

    from actorcritic.run.checkpoint import load_checkpoint

    ckdir = hopper_run / "checkpoints"
    first = load_checkpoint(ckdir / "update_00000001.safetensors").tensors
    final = load_checkpoint(ckdir / "final.safetensors").tensors
    weights = [k for k in final if k.startswith("model.") and ".obs_norm." not in k]
    assert len(weights) >= 10 and "model.policy.log_std" in weights
    for key in weights:
        assert torch.isfinite(final[key]).all(), key
        assert not torch.equal(first[key], final[key]), f"{key} did not change"
    # observation statistics: 11 entries, one sample per step, real Hopper observations
    assert final["model.obs_norm.mean"].shape == (11,)
    assert float(first["model.obs_norm.count"]) == pytest.approx(1024, abs=1e-3)
    assert float(final["model.obs_norm.count"]) == pytest.approx(2048, abs=1e-3)
    assert 0.7 < float(final["model.obs_norm.mean"][0]) < 1.5  # the torso height (~1.25 m)
    assert (final["model.obs_norm.var"] > 0).all()
    assert torch.isfinite(final["model.obs_norm.var"]).all()
    # reward statistics (running return: mean, variance, count) in the checkpoint
    stats = final["extra.reward_norm.stats"]
    assert torch.isfinite(stats).all() and float(stats[-1]) == pytest.approx(2048, abs=1e-3)
    assert not torch.equal(first["extra.reward_norm.stats"], stats)
    with open(hopper_run / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["losses/total"] != ""]
    assert [int(r["env_steps"]) for r in rows] == [1024, 2048]
    for row in rows:
        for key in ("losses/policy", "losses/value", "losses/entropy", "losses/total",
                    "losses/approx_kl", "diag/grad_norm"):
            assert math.isfinite(float(row[key])), (row["env_steps"], key)
        assert float(row["losses/approx_kl"]) != 0  # the policy moved within the update


@pytest.mark.skipif(osmesa_missing(), reason="OSMesa is not installed (scripts/install_osmesa.sh)")
def test_video_without_a_display(hopper_run, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")}
    out = subprocess.run([sys.executable, "-m", "actorcritic.cli", "eval", str(hopper_run),
                          "--episodes", "1", "--video", str(tmp_path / "v")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    video = tmp_path / "v" / "episode_000.mp4"
    reader = imageio.get_reader(video)
    frame = reader.get_data(0)
    assert frame.ndim == 3 and frame.std() > 1  # a rendered scene, not a blank frame
    assert reader.count_frames() > 10


def test_rendering_without_any_opengl_is_one_clear_line(hopper_run, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MUJOCO_GL"] = "glfw"  # needs a display, and there is none
    out = subprocess.run([sys.executable, "-m", "actorcritic.cli", "eval", str(hopper_run),
                          "--episodes", "1", "--video", str(tmp_path / "v")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("actorcritic: error: cannot render Hopper-v5 with MUJOCO_GL=glfw")
    assert "install OSMesa" in last
    assert "Traceback" not in out.stderr
