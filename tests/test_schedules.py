"""Learning-rate and PPO clip-range schedules: each against a plain reference computation,
and resume with both schedules active is bit-exact."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from actorcritic import train
from actorcritic.config import load_config
from actorcritic.run.checkpoint import load_checkpoint
from actorcritic.schedules import clip_at, lr_at

TOTAL = 10_000
STEPS = [0, 1, 8, 2_500, 5_000, 9_999, 10_000, 12_000]
EPISODES = [0, 1, 10, 99, 990, 9_000, 99_000]


def algo_with(**changes):
    return dataclasses.replace(load_config("cartpole-ppo").algo, **changes)


# ---------------------------------------------------------------- the schedules

@pytest.mark.parametrize("lr", [3e-3, 7e-4])
def test_constant_lr_is_the_configured_lr(lr):
    algo = algo_with(lr=lr, lr_schedule="constant")
    for steps in STEPS:
        for episodes in EPISODES:
            assert lr_at(algo, steps, TOTAL, episodes) == lr


@pytest.mark.parametrize("lr", [3e-3, 7e-4])
def test_linear_lr_falls_in_a_straight_line_to_zero_at_total_steps(lr):
    algo = algo_with(lr=lr, lr_schedule="linear")
    # the line through (0, lr) and (TOTAL, 0), flat at 0 after it; episodes play no part
    reference = np.interp(STEPS, [0, TOTAL], [lr, 0.0], right=0.0)
    for steps, want in zip(STEPS, reference, strict=True):
        for episodes in EPISODES:
            assert lr_at(algo, steps, TOTAL, episodes) == pytest.approx(want, rel=1e-12,
                                                                         abs=1e-18)
    assert lr_at(algo, 0, TOTAL, 0) == lr
    assert lr_at(algo, TOTAL // 2, TOTAL, 0) == pytest.approx(lr / 2, rel=1e-12)
    assert lr_at(algo, TOTAL, TOTAL, 0) == 0.0
    assert lr_at(algo, 2 * TOTAL, TOTAL, 0) == 0.0  # never negative past the end


@pytest.mark.parametrize("lr", [3e-3, 7e-4])
def test_log10_lr_divides_by_log10_of_the_episode_count(lr):
    """lr / log10(0.01 * episodes + 10): lr at the start, lr / 2 after 9000 episodes
    (log10(100) = 2), lr / 3 after 99000 (log10(1000) = 3); env steps play no part."""
    algo = algo_with(lr=lr, lr_schedule="log10")
    reference = lr / np.log10(0.01 * np.array(EPISODES, dtype=np.float64) + 10.0)
    for episodes, want in zip(EPISODES, reference, strict=True):
        for steps in STEPS:
            assert lr_at(algo, steps, TOTAL, episodes) == pytest.approx(want, rel=1e-12)
    assert lr_at(algo, 0, TOTAL, 0) == pytest.approx(lr, rel=1e-12)
    assert lr_at(algo, 0, TOTAL, 9_000) == pytest.approx(lr / 2, rel=1e-12)
    assert lr_at(algo, 0, TOTAL, 99_000) == pytest.approx(lr / 3, rel=1e-12)


@pytest.mark.parametrize("clip_coef", [0.2, 0.1])
def test_clip_schedules(clip_coef):
    """constant: clip_coef throughout; linear: the line from clip_coef at the start to 0 at
    the end of training, 0 past it."""
    progress = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5]
    constant = algo_with(clip_coef=clip_coef, clip_schedule="constant")
    assert [clip_at(constant, p) for p in progress] == [clip_coef] * len(progress)
    linear = algo_with(clip_coef=clip_coef, clip_schedule="linear")
    reference = np.interp(progress, [0.0, 1.0], [clip_coef, 0.0], right=0.0)
    got = [clip_at(linear, p) for p in progress]
    np.testing.assert_allclose(got, reference, rtol=1e-12, atol=1e-18)
    assert got[0] == clip_coef and got[-2:] == [0.0, 0.0]


# ---------------------------------------------------------------- exact resume

RUN = ["env.num_envs=4", "run.eval_episodes=0", "run.eval_every=0", "run.stop_eval_return=null",
       "run.log_every=1", "algo.lr_schedule=linear"]


def metrics(run_dir: Path, column: str) -> list[tuple[int, float]]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [(int(r["env_steps"]), float(r[column])) for r in csv.DictReader(fh)
                if r[column] != ""]


def assert_resume_is_exact(tmp_path: Path, preset: str, overrides: list[str], total: int,
                           stop_after_episodes: int, columns: list[str]) -> None:
    """Train `total` steps straight, and the same run stopped half-way (by run.max_episodes,
    so that run.total_steps, and with it the schedules, stay those of the full run), then
    resumed to `total`: every parameter, optimizer and normalization tensor equal, and the
    scheduled values logged at every update equal."""
    full = train(preset, tmp_path / "full", quiet=True,
                 overrides=overrides + [f"run.total_steps={total}"])
    half = train(preset, tmp_path / "half", quiet=True,
                 overrides=overrides + [f"run.total_steps={total}",
                                        f"run.max_episodes={stop_after_episodes}"])
    assert half["stop_reason"] == "max_episodes"
    assert total // 4 <= half["env_steps"] <= 3 * total // 4  # stopped near half-way
    resumed = train(resume=tmp_path / "half", quiet=True, overrides=["run.max_episodes=0"])
    assert full["stop_reason"] == resumed["stop_reason"] == "total_steps"
    assert resumed["env_steps"] == full["env_steps"] == total
    assert resumed["episodes"] == full["episodes"]

    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "final.safetensors").tensors
    b = load_checkpoint(tmp_path / "half" / "checkpoints" / "final.safetensors").tensors
    compared = [k for k in a if k.startswith(("model.", "optim.", "extra.reward_norm."))]
    assert any(k.startswith("model.") for k in compared)
    assert any(k.startswith("optim.") for k in compared)
    assert {k for k in b if k.startswith(("model.", "optim.", "extra.reward_norm."))} == \
        set(compared)
    for key in compared:
        assert torch.equal(a[key], b[key]), key

    for column in columns:
        straight = metrics(tmp_path / "full", column)
        assert metrics(tmp_path / "half", column) == straight, column
        values = [v for _, v in straight]
        assert values[0] > values[-1] >= 0 and values == sorted(values, reverse=True), column


def test_a2c_resume_is_bit_exact_with_a_linear_lr_schedule(tmp_path):
    assert_resume_is_exact(tmp_path, "cartpole-a2c", RUN, total=4000, stop_after_episodes=47,
                           columns=["charts/lr"])


def test_ppo_resume_is_bit_exact_with_linear_lr_and_clip_schedules(tmp_path):
    assert_resume_is_exact(tmp_path, "cartpole-ppo", RUN + ["algo.clip_schedule=linear"],
                           total=4096, stop_after_episodes=58,
                           columns=["charts/lr", "diag/clip_coef"])


def test_ppo_takes_lr_and_clip_range_at_the_same_point_of_training(tmp_path):
    """Both linear schedules decay from the same env-step count: at every update
    lr / algo.lr == clip / algo.clip_coef (the clip range was once taken one rollout later,
    so the last update ran with clip 0 while the learning rate was still above 0)."""
    train("cartpole-ppo", tmp_path / "run", quiet=True, overrides=RUN + [
        "run.total_steps=2048", "algo.clip_schedule=linear", "algo.lr_schedule=linear"])
    cfg = load_config("cartpole-ppo")
    lr = dict(metrics(tmp_path / "run", "charts/lr"))
    clip = dict(metrics(tmp_path / "run", "diag/clip_coef"))
    assert lr.keys() == clip.keys() and len(lr) >= 4
    for step in lr:
        assert lr[step] / cfg.algo.lr == pytest.approx(clip[step] / cfg.algo.clip_coef)
    assert min(clip.values()) > 0
