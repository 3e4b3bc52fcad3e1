"""A3C's learner, the one every worker runs (Hogwild, Recht et al. 2011; Mnih et al. 2016):
the loss of its rollout on its local copy, backward, clip, NaN guard, then the gradients
handed to the global parameters in shared memory and one step of the shared optimizer,
without waiting for the other workers.
"""

from __future__ import annotations

import torch
from torch import nn

from actorcritic.algorithms.update import clip_and_measure, guard_update, rollout_loss
from actorcritic.run.loop import Stats
from actorcritic.samplers.experience import Collected


def pull_params(local: nn.Module, global_model: nn.Module) -> None:
    """Copy the global parameters and buffers into the local model."""
    with torch.no_grad():
        for lp, gp in zip(local.parameters(), global_model.parameters(), strict=True):
            lp.copy_(gp)
        for lb, gb in zip(local.buffers(), global_model.buffers(), strict=True):
            lb.copy_(gb)


def push_grads(local_params: list[torch.Tensor], global_params: list[torch.Tensor]) -> None:
    """Give every global parameter this update's local gradient.

    Assigned on every update. Public A3C code often does `if global.grad is not None:
    return` here, which only works while the local grad tensor is reused in place; with
    `zero_grad(set_to_none=True)` each backward makes new tensors, so that shortcut leaves
    the global parameters with the first update's gradients forever. The gradient is private
    to this process (a process-local attribute of its handle on the shared parameter).
    """
    for lp, gp in zip(local_params, global_params, strict=True):
        gp.grad = lp.grad


def a3c_update(local: nn.Module, global_params: list[torch.Tensor], optimizer, loss: torch.Tensor,
               stats: dict, max_grad_norm: float, nan_guard: bool = True,
               update: int = 0) -> None:
    """Backward on the local model, clip, check, push the grads and step the shared optimizer."""
    local_params = list(local.parameters())
    local.zero_grad(set_to_none=True)
    loss.backward()
    stats["diag/grad_norm"] = clip_and_measure(local_params, max_grad_norm)
    if nan_guard:

        guard_update(local, loss, stats, update)
    push_grads(local_params, global_params)
    optimizer.step()


class HogwildLearner:
    """A worker's learner: the loss of its rollout on its local copy, backward, clip, NaN
    guard, then the gradients handed to the global parameters and one step of the shared
    optimizer, without waiting for the other workers (Hogwild; `algo.shared_lock` adds a
    lock around the step)."""

    def __init__(self, local: nn.Module, global_model: nn.Module, optimizer, cfg):
        self.local, self.global_model, self.optimizer, self.cfg = local, global_model, \
            optimizer, cfg
        self.global_params = [p for g in optimizer.param_groups for p in g["params"]]
        if any(a is not b for a, b in zip(self.global_params, global_model.parameters(),
                                          strict=True)):
            raise RuntimeError("the shared optimizer does not hold the global model's "
                               "parameters")

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def pull(self) -> None:
        """Act and learn from the newest global parameters."""
        pull_params(self.local, self.global_model)

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        rollout = collected.rollout()
        # The acting passes, recorded where the sampler replays them (a CNN): the local
        # parameters did not change since they acted, so the gradient is the recomputed one.
        loss, stats = rollout_loss(self.local, rollout.buffer, self.cfg.algo,
                                   with_stats=log_now, acted=rollout.acted)
        a3c_update(self.local, self.global_params, self.optimizer, loss, stats,
                   self.cfg.algo.max_grad_norm, self.cfg.run.nan_guard, update)
        return stats
