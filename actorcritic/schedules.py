"""Schedules of training: the learning rate, PPO's clip range and PPO's minibatch order.

Pure functions of the config and of how far training is, so the one loop (run/loop.py),
the learners and the one-file guide (examples/ppo_single_file.py) compute them alike.
"""

from __future__ import annotations

import math

import numpy as np

from actorcritic.config import AlgoConfig


def lr_at(cfg: AlgoConfig, env_steps: int, total_steps: int, episodes: int) -> float:
    """The learning rate of `cfg.lr_schedule` at a point of training."""
    if cfg.lr_schedule == "linear":
        return cfg.lr * max(0.0, 1.0 - env_steps / total_steps)
    if cfg.lr_schedule == "log10":
        return cfg.lr / math.log10(0.01 * episodes + 10)
    return cfg.lr


def clip_at(cfg: AlgoConfig, progress: float) -> float:
    """PPO's clip range at a fraction of training done (`cfg.clip_schedule`)."""
    if cfg.clip_schedule == "linear":
        return cfg.clip_coef * max(0.0, 1.0 - progress)
    return cfg.clip_coef


def minibatch_rng(seed: int, update: int) -> np.random.Generator:
    """The stream that orders PPO's minibatches in update `update` (counted from 1): a
    function of the seed and the update alone, so a resumed run shuffles as the run that
    was never interrupted."""
    return np.random.default_rng([seed, update, 0x990])
