"""Running observation normalization, part of the model (`model.normalize_obs`).

The statistics are buffers of the model, so they travel with it everywhere it acts:
checkpoints, resume, `actorcritic eval`, videos, `actorcritic.load`, ONNX export and
init-from. The forward pass only reads them; the learner folds a rollout's observations
in after its update (`update_obs_stats`), so acting and learning on one rollout see the
same statistics and evaluation sees frozen ones.
"""

from __future__ import annotations

import torch
from torch import nn


def merge_moments(mean, var, count, batch_mean, batch_var, n: int):
    """Mean, variance and count of two sample sets from theirs (Chan et al.'s parallel
    update, exact in any order): works on floats, arrays and tensors alike."""
    total = count + n
    delta = batch_mean - mean
    new_mean = mean + delta * n / total
    m2 = var * count + batch_var * n + delta * delta * count * n / total
    return new_mean, m2 / total, total


class ObsNormalizer(nn.Module):
    """(obs - mean) / sqrt(var + eps), clipped to [-clip, clip].

    mean, var and count are float64 (Chan et al.'s parallel update stays exact over
    millions of samples); `shift` and `scale` are their float32 form that acting uses.
    count starts at 1e-4 with mean 0 and var 1, so before the first update the
    observations pass through unchanged (up to the clip).
    """

    def __init__(self, shape: tuple[int, ...], clip: float, eps: float = 1e-8):
        super().__init__()
        self.clip, self.eps = float(clip), eps
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        self.register_buffer("shift", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(shape))
        self._refresh()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs - self.shift) * self.scale).clamp(-self.clip, self.clip)

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Fold a batch [B, *shape] of raw observations into the statistics."""
        x = batch.reshape(-1, *self.mean.shape).to(torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        mean, var, count = merge_moments(self.mean, self.var, self.count, x.mean(0),
                                         x.var(0, unbiased=False), n)
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(count)
        self._refresh()

    @torch.no_grad()
    def _refresh(self) -> None:
        self.shift.copy_(self.mean.float())
        self.scale.copy_((self.var + self.eps).rsqrt().float())


def update_obs_stats(model: nn.Module, obs: torch.Tensor) -> None:
    """After an update: the rollout's observations rows 0..T-1 ([T+1, N, ...]; row T is the
    next rollout's row 0) go into the model's statistics, when it normalizes."""
    norm = getattr(model, "obs_norm", None)
    if isinstance(norm, ObsNormalizer):
        norm.update(obs[:-1])
