"""The replay buffer of SAC and TD3: a ring of transitions in CPU tensors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated")


class ReplayBuffer:
    """A ring of `capacity` transitions in CPU tensors (NumPy views for the writes).

    `pos` is the next row written; once `size` reaches `capacity` the oldest rows are
    overwritten. Truncation is not stored: a truncated transition bootstraps like any
    non-terminal one, from its next observation.
    """

    def __init__(self, capacity: int, obs_space: gym.Space, action_dim: int):
        obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
        self.capacity = capacity
        self.obs = torch.zeros((capacity, *obs_space.shape), dtype=obs_dtype)
        self.next_obs = torch.zeros_like(self.obs)
        self.actions = torch.zeros((capacity, action_dim))
        self.rewards = torch.zeros(capacity)
        self.terminated = torch.zeros(capacity, dtype=torch.bool)
        self.np = {name: getattr(self, name).numpy() for name in FIELDS}
        self.pos = 0
        self.size = 0

    @staticmethod
    def bytes_for(capacity: int, obs_space: gym.Space, action_dim: int) -> int:
        obs = int(np.prod(obs_space.shape)) * (1 if obs_space.dtype == np.uint8 else 4)
        return capacity * (2 * obs + 4 * action_dim + 4 + 1)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in FIELDS)

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            next_obs: np.ndarray, terminated: np.ndarray) -> None:
        """Append a batch of transitions [K, ...] (K may exceed the room left before the
        end of the ring: it wraps around)."""
        k = len(rewards)
        rows = (self.pos + np.arange(k)) % self.capacity
        for name, values in zip(FIELDS, (obs, actions, rewards, next_obs, terminated)):
            self.np[name][rows] = values
        self.pos = int((self.pos + k) % self.capacity)
        self.size = min(self.size + k, self.capacity)

    def sample(self, batch_size: int, device: torch.device | str = "cpu"
               ) -> dict[str, torch.Tensor]:
        """A minibatch drawn uniformly with replacement (torch's global random stream, which
        checkpoints hold, so a resumed run draws what the uninterrupted one would)."""
        idx = torch.randint(0, self.size, (batch_size,))
        return {name: getattr(self, name)[idx].to(device) for name in FIELDS}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The filled rows, for a checkpoint."""
        return {f"replay.{name}": getattr(self, name)[:self.size] for name in FIELDS}

    def load(self, tensors: dict[str, torch.Tensor], pos: int, size: int) -> None:
        for name in FIELDS:
            getattr(self, name)[:size] = tensors[f"replay.{name}"]
        self.pos, self.size = pos, size
