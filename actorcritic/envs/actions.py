"""From the policy's actions to what an env accepts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch


class ActionAdapter:
    """Turns action arrays into what the env expects (clipped floats for Box)."""

    def __init__(self, space: gym.Space):
        self.box = isinstance(space, gym.spaces.Box)
        if self.box:
            self.low, self.high = space.low, space.high

    def __call__(self, action: torch.Tensor | np.ndarray) -> np.ndarray:
        a = action.cpu().numpy() if isinstance(action, torch.Tensor) else action
        return np.clip(a, self.low, self.high) if self.box else a
