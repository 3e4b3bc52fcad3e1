"""A user's own env and encoder, importable by name (`custom_envs:make_sign_env`,
`custom_envs:TinyEncoder`) in the tests and in processes they start (PYTHONPATH=tests)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from torch import nn


class SignEnv(gym.Env):
    """Say the sign: the observation is [sign, noise], reward 1 for action 1 on a positive
    sign and action 0 on a negative one; episodes of `length` steps. A random policy scores
    length / 2, the right one `length`."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 10, render_mode: str | None = None):
        self.length = length
        self.render_mode = render_mode

    def _observe(self) -> np.ndarray:
        self.sign = 1.0 if self.np_random.random() < 0.5 else -1.0
        return np.array([self.sign, self.np_random.uniform(-1, 1)], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._observe(), {}

    def step(self, action):
        reward = float(int(action) == (self.sign > 0))
        self.t += 1
        return self._observe(), reward, False, self.t >= self.length, {}

    def render(self):
        frame = np.zeros((16, 16, 3), np.uint8)
        frame[..., 1 if self.sign > 0 else 0] = 255
        return frame


def make_sign_env(length: int = 10, render_mode: str | None = None) -> gym.Env:
    """The env factory a user writes: a function that returns a Gymnasium env."""
    return SignEnv(length, render_mode)


class TinyEncoder(nn.Module):
    """The encoder a user writes: observations [B, ...] -> features [B, out_size]."""

    def __init__(self, observation_space: gym.Space, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(int(np.prod(observation_space.shape)), hidden),
                                 nn.Tanh())
        self.out_size = hidden

    def forward(self, obs):
        return self.net(obs.flatten(1).float())
