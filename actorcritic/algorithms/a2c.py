"""A2C's learners: one rollout -> one optimizer step.

- `TorchLearner`: the loss by autograd (replaying the recorded acting passes where the
  sampler kept them), clip, NaN guard, step. With algo.overlap the gradient is taken on
  the copy that acted and applied to the newest parameters.
- `NumpyLearner`: the same update with hand-derived gradients in NumPy (small MLPs).
- `ProcessLearner`: this process's gradient plus the helpers', weighted by valid steps,
  then one step (algo.processes).
"""

from __future__ import annotations

import torch
from torch import nn

from actorcritic.algorithms.update import OptimizerState, apply_update, rollout_loss
from actorcritic.models.normalize import update_obs_stats
from actorcritic.run.loop import Stats
from actorcritic.samplers.experience import Collected
from actorcritic.samplers.overlap import OverlappedRollouts
from actorcritic.samplers.processes import Helpers, torch_threads, valid_count


class TorchLearner(OptimizerState):
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, cfg,
                 device: torch.device, overlap: OverlappedRollouts | None = None):
        self.model, self.optimizer, self.cfg, self.device = model, optimizer, cfg, device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.overlap = overlap  # algo.overlap: the sampler acts on a thread

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        rollout = collected.rollout()
        # The gradient is taken at the parameters that acted.
        loss, stats = rollout_loss(rollout.model, rollout.buffer.to(self.device),
                                   self.cfg.algo, with_stats=log_now, acted=rollout.acted)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.overlap is not None:
            self.overlap.take_gradients(rollout)
        apply_update(self.model, self.optimizer, self.params, loss, stats, self.cfg, update,
                     log_now)
        update_obs_stats(self.model, rollout.buffer.obs)
        if self.overlap is not None:
            self.overlap.release(rollout)
        return stats


class NumpyLearner(OptimizerState):
    def __init__(self, numpy_update):
        self.numpy_update = numpy_update  # numpy_update.NumpyA2CUpdate
        self.optimizer = numpy_update.optimizer

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        return self.numpy_update(collected.rollout().buffer, update, with_stats=log_now)


class ProcessLearner(OptimizerState):
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, cfg,
                 device: torch.device, helpers: Helpers, own_grad: torch.Tensor,
                 tail_threads: int):
        self.model, self.optimizer, self.cfg, self.device = model, optimizer, cfg, device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.helpers, self.own_grad, self.tail_threads = helpers, own_grad, tail_threads

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        rollout = collected.rollout()
        buf = rollout.buffer
        loss, stats = rollout_loss(self.model, buf.to(self.device), self.cfg.algo,
                                   with_stats=log_now, acted=rollout.acted)
        self.own_grad.zero_()
        loss.backward()
        # The tail (combine, clip, step) runs on every core while the helpers wait.
        with torch_threads(self.tail_threads):
            loss, stats = self.helpers.finish_update(self.own_grad, valid_count(buf), loss,
                                                     stats)
            apply_update(self.model, self.optimizer, self.params, loss, stats, self.cfg,
                         update, log_now)
        return stats
