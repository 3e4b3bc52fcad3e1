"""Shared test helpers: small registered envs and a run-dir factory."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

warnings.filterwarnings("ignore", message=".*precision lowered.*")


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step, a constant observation, never terminates: only a time limit
    ends episodes. The true value of every state is 1 / (1 - gamma)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(2, np.float32), {}

    def step(self, action):
        return np.ones(2, np.float32), 1.0, False, False, {}


if "ConstantReward-v0" not in gym.registry:
    gym.register("ConstantReward-v0", entry_point=ConstantRewardEnv, max_episode_steps=20)


@pytest.fixture
def run_dir(tmp_path):
    return tmp_path / "run"
