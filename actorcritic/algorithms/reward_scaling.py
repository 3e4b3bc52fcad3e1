"""What the learner sees of the env's rewards: a constant factor (`algo.reward_scale`) or,
with `algo.normalize_reward`, the reward divided by a running estimate of the standard
deviation of the discounted return (Engstrom et al. 2020; SB3's VecNormalize, Gymnasium's
NormalizeReward). Episode statistics always stay raw.
"""

from __future__ import annotations

import numpy as np
import torch

from actorcritic.models.normalize import merge_moments


class ConstantScale:
    """reward * factor; nothing to save."""

    def __init__(self, factor: float):
        self.factor = float(factor)

    def __call__(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray
                 ) -> np.ndarray:
        return reward if self.factor == 1.0 else reward * self.factor

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


class ReturnScale:
    """reward / sqrt(Var[discounted return] + eps), clipped to [-clip, clip].

    Per env, the discounted return so far is kept (zeroed when an episode ends); after each
    step the batch of returns updates the running variance (float64, parallel update), and
    that step's rewards are divided by the updated standard deviation.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float, eps: float = 1e-8):
        self.gamma, self.clip, self.eps = gamma, clip, eps
        self.returns = np.zeros(num_envs)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def __call__(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray
                 ) -> np.ndarray:
        self.returns = self.returns * self.gamma + reward
        self._update(self.returns)
        scaled = reward / np.sqrt(self.var + self.eps)
        self.returns[terminated | truncated] = 0.0
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def _update(self, x: np.ndarray) -> None:
        self.mean, self.var, self.count = merge_moments(
            self.mean, self.var, self.count, float(x.mean()), float(x.var()), x.shape[0])

    def state_tensors(self) -> dict[str, torch.Tensor]:
        stats = torch.tensor([self.mean, self.var, self.count], dtype=torch.float64)
        return {"extra.reward_norm.returns": torch.from_numpy(self.returns.copy()),
                "extra.reward_norm.stats": stats}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if "extra.reward_norm.stats" not in tensors:
            return
        self.returns = tensors["extra.reward_norm.returns"].numpy().astype(np.float64).copy()
        self.mean, self.var, self.count = (float(v) for v in tensors["extra.reward_norm.stats"])


def reward_transform(algo, num_envs: int) -> ConstantScale | ReturnScale:
    """The transform the config asks for (`algo.normalize_reward`, `algo.reward_scale`)."""
    if algo.normalize_reward:
        return ReturnScale(num_envs, algo.gamma, algo.reward_clip)
    return ConstantScale(algo.reward_scale)
