"""The pieces every actor-critic update shares: the rollout's loss, the optimizer and its
learning-rate schedule, gradient clipping with its diagnostics, the NaN guard and the step.

Used by A2C (one process or several), A3C workers (each on its local model) and the
IMPALA learner.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from actorcritic.algorithms.losses import actor_critic_loss
from actorcritic.algorithms.optimizers import RMSpropTF
from actorcritic.algorithms.returns import gae_advantages
from actorcritic.config import AlgoConfig
from actorcritic.errors import NonFiniteError
from actorcritic.models.encoders import MLP
from actorcritic.run.checkpoint import optimizer_tensors
from actorcritic.samplers.rollout import ActingPasses, RolloutBuffer


def rollout_loss(model: nn.Module, buf: RolloutBuffer, cfg: AlgoConfig, with_stats: bool = True,
                 acted: ActingPasses | None = None):
    """Loss over one rollout, recomputed from `buf.start_state` with BPTT for recurrent cores.

    The forward pass includes the bootstrap observation (row T), so its value comes from
    the same parameters that acted. `acted`, the acting forward passes kept with their
    graph: given, nothing is recomputed.
    """
    if acted is None:
        params, values, _ = model(buf.obs, buf.first, buf.start_state)  # [T+1, N, ...]
    else:
        params, values = acted
    logp, entropy = model.policy.log_prob_entropy(params[:buf.num_steps], buf.actions)
    advantages, returns = gae_advantages(buf.rewards, values.detach(), buf.terminated,
                                         buf.truncated, cfg.gamma, cfg.gae_lambda)
    return actor_critic_loss(logp, entropy, values[:-1], advantages, returns, buf.valid,
                             cfg.vf_coef, cfg.ent_coef, cfg.normalize_advantage, with_stats)


def reuses_acting_graph(model: nn.Module, cfg: AlgoConfig) -> bool:
    """Whether A2C backpropagates through the acting passes (`algo.reuse_acting_graph`).

    Only feedforward models: a recurrent core trains faster through its fused sequence
    kernel. `auto` turns it on for CNN encoders, where a forward pass costs far more than
    recording the acting passes and replaying them (accelerators/replay.py); for small MLPs it
    does not pay."""
    if model.cfg.core != "none" or cfg.reuse_acting_graph == "off":
        return False
    if cfg.reuse_acting_graph == "on":
        return True
    encoder = model.actor_trunk.encoder
    return not isinstance(encoder, MLP)


def accelerators_line(acting: str, update: str) -> str:
    """The accelerators in use, named at start: each is opted into by a config key and
    tested equal to the plain torch path. (The encoder's precision, a fast path that is
    not bit-equal to float32, has a start line of its own: models/precision.py.)"""
    names = [name for name, on in (("numpy acting (run.numpy_acting)", acting == "numpy"),
                                   ("replayed acting passes (algo.reuse_acting_graph)",
                                    "replay" in acting),
                                   ("numpy update (run.numpy_update)", "numpy" in update))
             if on]
    return "accelerators: " + (", ".join(names) if names else "none (the plain torch path)")


def make_optimizer(params, cfg: AlgoConfig) -> torch.optim.Optimizer:
    """Adam (fused kernel) or RMSprop (multi-tensor): one op per step instead of one per
    parameter tensor, which is what a small network's update time is made of."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.optim_eps, fused=True)
    if cfg.optimizer == "rmsprop_tf":
        return RMSpropTF(params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.optim_eps)
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.optim_eps,
                               foreach=True)


def grad_stats(params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Max |g| and variance of all gradient entries (for diagnostics)."""
    flat = torch.cat([p.grad.reshape(-1) for p in params if p.grad is not None])
    return {"diag/grad_max": flat.abs().max(), "diag/grad_var": flat.var()}


def clip_and_measure(params: list[torch.Tensor], max_grad_norm: float) -> torch.Tensor:
    """Clip gradients to max_grad_norm (0: no clipping); return the norm before clipping.

    A non-finite norm leaves the gradients unscaled (clipping would multiply every one by
    NaN), so the NaN guard can still name the parameter the bad gradient came from.
    """
    norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None],
                                   foreach=True)
    if max_grad_norm > 0:
        usable = torch.where(torch.isfinite(norm), norm, torch.zeros_like(norm))
        nn.utils.clip_grads_with_norm_(params, max_grad_norm, usable, foreach=True)
    return norm


def guard_update(model: torch.nn.Module, loss: torch.Tensor, stats: dict, update: int) -> None:
    """Stop on a non-finite loss or gradient, naming where it appeared."""
    if not torch.isfinite(loss):
        parts = ", ".join(f"{k}={float(v):.4g}" for k, v in stats.items()
                          if k.startswith("losses/"))
        raise NonFiniteError(f"non-finite loss at update {update} ({parts})")
    if not torch.isfinite(stats["diag/grad_norm"]):
        bad = [n for n, p in model.named_parameters()
               if p.grad is not None and not torch.isfinite(p.grad).all()]
        raise NonFiniteError(f"non-finite gradient at update {update} in "
                             f"{', '.join(bad[:3]) or 'the parameters'}")


def apply_update(model: nn.Module, optimizer: torch.optim.Optimizer, params: list,
                 loss: torch.Tensor, stats: dict, cfg, update: int, log_now: bool) -> None:
    """Gradients are in place: clip them (recording the norm before clipping), stop on a
    non-finite loss or gradient, add the gradient diagnostics on logged updates, step."""
    stats["diag/grad_norm"] = clip_and_measure(params, cfg.algo.max_grad_norm)
    if cfg.run.nan_guard:
        guard_update(model, loss, stats, update)
    if log_now:
        stats.update(grad_stats(params))
    optimizer.step()


class OptimizerState:
    """What every learner shares: its optimizer's learning rate and checkpoint state."""

    optimizer: torch.optim.Optimizer

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        opt_tensors, opt_meta = optimizer_tensors(self.optimizer)
        tensors.update(opt_tensors)
        meta["optimizer"] = opt_meta

    def holding_still(self) -> contextlib.AbstractContextManager:
        """Nothing else steps this optimizer while a checkpoint is copied."""
        return contextlib.nullcontext()
