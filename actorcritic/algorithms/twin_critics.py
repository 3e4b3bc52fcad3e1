"""What SAC's and TD3's learners share: twin critics' loss and bootstrapped target, the
Polyak update of target networks, and a learner's several optimizers (learning rate and
checkpoint state)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from actorcritic.errors import NonFiniteError
from actorcritic.run.checkpoint import load_optimizer, optimizer_tensors


def polyak_update(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """target <- (1 - tau) target + tau online, for every tensor in one multi-tensor op."""
    with torch.no_grad():
        torch._foreach_lerp_(target, online, tau)


def twin_critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over the twins of the mean squared error to the (shared) target: q [2, B],
    target [B] (CleanRL's qf1_loss + qf2_loss)."""
    return (q - target).pow(2).mean(-1).sum()


def bootstrap_target(rewards: torch.Tensor, terminated: torch.Tensor, next_value: torch.Tensor,
                     gamma: float) -> torch.Tensor:
    """r + gamma * next_value, except after termination: a terminated transition has no
    future. A truncated one (a time limit) bootstraps from its next observation like any
    other, since the replay buffer never marks it terminal."""
    return rewards + gamma * (~terminated).float() * next_value


@contextlib.contextmanager
def frozen(params: list[torch.Tensor]):
    """No weight gradients for `params` inside (the actor's loss backpropagates through the
    critics to the action only; Stable-Baselines3 computes and discards these)."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def learn_from_replay(collected, batch_size: int, device: torch.device,
                      gradient_step, log_now: bool) -> dict:
    """A learner's `update`: the gradient steps the replay sampler asked for, each on a
    fresh minibatch; the last one's statistics on logged updates."""
    replay = collected.replay()
    stats: dict = {}
    for _ in range(replay.gradient_steps):
        stats = gradient_step(replay.buffer.sample(batch_size, device))
    return stats if log_now else {}


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[torch.Tensor],
            max_grad_norm: float, name: str, update: int, nan_guard: bool) -> None:
    """One optimizer step on `loss`: stop first if it is not finite (`run.nan_guard`), then
    backpropagate, clip (`algo.max_grad_norm`, 0: off) and step."""
    if nan_guard:
        check_finite_loss(loss, name, update)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clip_grads(params, max_grad_norm)
    optimizer.step()


def check_finite_loss(loss: torch.Tensor, name: str, update: int) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteError(f"non-finite {name} loss at update {update} ({name} "
                             f"{float(loss):.4g})")


def clip_grads(params: list[torch.Tensor], max_grad_norm: float) -> None:
    if max_grad_norm > 0:
        nn.utils.clip_grad_norm_(params, max_grad_norm, foreach=True)


class Optimizers:
    """A learner's named optimizers: learning rate, checkpoint state, nothing held still
    (only the learner steps them)."""

    def __init__(self, **optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    def set_lr(self, lr: float) -> None:
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        for name, opt in self.optimizers.items():
            opt_tensors, opt_meta = optimizer_tensors(opt, prefix=f"optim_{name}")
            tensors.update(opt_tensors)
            meta[f"optimizer_{name}"] = opt_meta

    def load(self, ckpt) -> None:
        for name, opt in self.optimizers.items():
            load_optimizer(opt, ckpt, prefix=f"optim_{name}", meta_key=f"optimizer_{name}")

    def holding_still(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()
