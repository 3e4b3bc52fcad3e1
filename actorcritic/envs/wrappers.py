"""Small Gymnasium wrappers used by several env families."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class HideObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Remove entries of a vector observation (e.g. CartPole's velocities), making the
    task partially observable: only a policy with memory can infer what was hidden."""

    def __init__(self, env: gym.Env, hidden: list[int]):
        gym.utils.RecordConstructorArgs.__init__(self, hidden=list(hidden))
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError("env.hide_obs needs a 1-D Box observation space")
        size = space.shape[0]
        bad = [i for i in hidden if not 0 <= int(i) < size]
        if bad:
            raise ValueError(f"env.hide_obs indices {bad} are outside the observation "
                             f"(size {size})")
        self.keep = np.array([i for i in range(size) if i not in {int(h) for h in hidden}])
        self.observation_space = gym.spaces.Box(space.low[self.keep], space.high[self.keep],
                                                dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.keep]
