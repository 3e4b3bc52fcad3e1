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
         "run.checkpoint_every=0", "env.max_episode_steps=200"]


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
    from actorcritic.run.checkpoint import load_checkpoint

    ckpt = load_checkpoint(hopper_run / "checkpoints" / "final.safetensors")
    assert ckpt.tensors["model.obs_norm.mean"].shape == (11,)
    assert float(ckpt.tensors["model.obs_norm.count"]) >= 2048 - 1
    assert "extra.reward_norm.stats" in ckpt.tensors


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
