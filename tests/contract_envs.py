"""An env for the contract tests, importable by spawned worker processes through the env id
`contract_envs:Contract-v0` (the tests put this folder on PYTHONPATH)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class ContractEnv(gym.Env):
    """3 float32 features, 2 actions, reward 1 for action 1, episodes of 20 steps. With
    fault=raise|nan_obs (`env.kwargs`, so it reaches envs in any process or Ray actor),
    every env misbehaves from its `after`-th step on."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, fault: str = "", after: int = 0):
        self.fault, self.after = fault, after
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.full(3, 0.1, np.float32), {}

    def step(self, action):
        self.t += 1
        self.steps += 1
        obs = np.full(3, self.t / 100, np.float32)
        if self.fault and self.steps > self.after:
            if self.fault == "raise":
                raise ValueError(f"sensor unplugged at step {self.steps}")
            obs[1] = np.nan
        return obs, float(action == 1), False, self.t >= 20, {}


class ContractBoxEnv(ContractEnv):
    """The same env with one continuous action in [-1, 1] (reward: the action), for the
    off-policy algorithms (SAC, TD3)."""

    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(1)
        return obs, float(np.asarray(action).reshape(-1)[0]), terminated, truncated, info


if "Contract-v0" not in gym.registry:
    gym.register("Contract-v0", entry_point=ContractEnv)
    gym.register("ContractBox-v0", entry_point=ContractBoxEnv)
