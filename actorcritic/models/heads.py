"""Action distributions for Discrete, MultiDiscrete and Box action spaces.

Written with plain tensor ops (no torch.distributions) because these run every env step.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from actorcritic.models.encoders import orthogonal_


class CategoricalHead(nn.Module):
    """Discrete(n) or MultiDiscrete([n1, n2, ...]) as independent categoricals."""

    def __init__(self, in_size: int, nvec: list[int]):
        super().__init__()
        self.nvec = list(nvec)
        self.linear = orthogonal_(nn.Linear(in_size, sum(self.nvec)), gain=0.01)
        self.multi = len(self.nvec) > 1

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)

    def _split(self, params: torch.Tensor) -> list[torch.Tensor]:
        return list(params.split(self.nvec, dim=-1))

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        # Gumbel-max: one vectorized op, no host sync.
        out = []
        for logits in self._split(params):
            u = torch.rand(logits.shape, dtype=logits.dtype, device=logits.device,
                           generator=generator).clamp_(1e-20, 1.0)
            out.append((logits - torch.log(-torch.log(u))).argmax(-1))
        return torch.stack(out, -1) if self.multi else out[0]

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        out = [logits.argmax(-1) for logits in self._split(params)]
        return torch.stack(out, -1) if self.multi else out[0]

    def sample_with_logp(self, params: torch.Tensor, greedy: bool = False,
                         generator: torch.Generator | None = None):
        """Action and its log-probability in the fewest ops (this runs every env step).
        `generator`: the random stream to sample from (default: torch's global one)."""
        if not self.multi:
            logp_all = torch.log_softmax(params, -1)
            if greedy:
                action = logp_all.argmax(-1)
            else:
                action = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(-1)
            return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        action = self.mode(params) if greedy else self.sample(params, generator)
        return action, self.log_prob_entropy(params, action)[0]

    def log_prob_entropy(self, params: torch.Tensor, actions: torch.Tensor):
        logp_total = 0.0
        ent_total = 0.0
        for i, logits in enumerate(self._split(params)):
            logp_all = torch.log_softmax(logits, -1)
            # actions: [...] for Discrete, [..., k] for MultiDiscrete
            a = actions[..., i] if self.multi else actions
            logp_total = logp_total + logp_all.gather(-1, a.long().unsqueeze(-1)).squeeze(-1)
            ent_total = ent_total - (logp_all.exp() * logp_all).sum(-1)
        return logp_total, ent_total


class GaussianHead(nn.Module):
    """Box actions: a diagonal Gaussian with a learned, state-independent log std.
    Actions are sampled unbounded; the env adapter clips them to the Box."""

    def __init__(self, in_size: int, action_dim: int):
        super().__init__()
        self.mean = orthogonal_(nn.Linear(in_size, action_dim), gain=0.01)
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        mean = self.mean(features)
        return torch.cat([mean, self.log_std.expand_as(mean)], -1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        mean, log_std = params.chunk(2, -1)
        noise = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device,
                            generator=generator)
        return mean + log_std.exp() * noise

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        return params.chunk(2, -1)[0]

    def sample_with_logp(self, params: torch.Tensor, greedy: bool = False,
                         generator: torch.Generator | None = None):
        action = self.mode(params) if greedy else self.sample(params, generator)
        return action, self.log_prob_entropy(params, action)[0]

    def log_prob_entropy(self, params: torch.Tensor, actions: torch.Tensor):
        mean, log_std = params.chunk(2, -1)
        z = (actions - mean) / log_std.exp()
        logp = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        entropy = (log_std + 0.5 * (1 + math.log(2 * math.pi))).sum(-1)
        return logp, entropy


def make_head(in_size: int, space: gym.Space) -> nn.Module:
    if isinstance(space, gym.spaces.Discrete):
        return CategoricalHead(in_size, [int(space.n)])
    if isinstance(space, gym.spaces.MultiDiscrete):
        return CategoricalHead(in_size, [int(n) for n in np.asarray(space.nvec).ravel()])
    if isinstance(space, gym.spaces.Box):
        return GaussianHead(in_size, int(np.prod(space.shape)))
    raise ValueError(f"action space {space} is not supported (Discrete, MultiDiscrete, Box)")
