"""IMPALA: actors play with a possibly stale copy of the policy, one learner corrects the lag
with V-trace (Espeholt et al. 2018).

- `impala_loss`: recompute target log-probs and values over [T+1, N] from the trajectories'
  recurrent start state, V-trace targets, the actor-critic loss on the valid steps.
- `CentralLearner`: one optimizer step on a batch of trajectories (or, a3c_ps on Ray, one
  worker's gradient applied as it is).
- `run_learner`: the learner in the driver process, on the one loop, fed by any actors
  (samplers/actors.py: `LocalActors` here, Ray actors in distributed/ray_backend.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from actorcritic.algorithms.losses import actor_critic_loss
from actorcritic.algorithms.returns import vtrace
from actorcritic.algorithms.update import OptimizerState, apply_update, make_optimizer
from actorcritic.config import AlgoConfig
from actorcritic.models.cores import State
from actorcritic.run.checkpoint import load_optimizer
from actorcritic.run.loop import Stats, run_loop
from actorcritic.samplers.actors import ActorsSampler, ExperienceSource, LocalActors
from actorcritic.samplers.experience import TRAJECTORY_FIELDS, Collected, Trajectory

# ---------------------------------------------------------------- the learner's loss

@dataclass
class TrajectoryBatch:
    """Trajectories side by side along the env axis: `fields` [T(+1), sum N, ...]."""

    fields: dict[str, torch.Tensor]   # TRAJECTORY_FIELDS
    start_state: State

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.fields[name]


def collate(trajs: list[Trajectory], device: torch.device) -> TrajectoryBatch:
    """Trajectories side by side along the env axis: [T(+1), sum N, ...]."""
    fields = {k: torch.from_numpy(np.concatenate([t.arrays[k] for t in trajs], 1)).to(device)
              for k in TRAJECTORY_FIELDS}
    state = tuple(torch.from_numpy(np.concatenate([t.start_state[i] for t in trajs], 0)
                                   ).to(device) for i in range(len(trajs[0].start_state)))
    return TrajectoryBatch(fields, state)


def impala_loss(model: nn.Module, batch: TrajectoryBatch, cfg: AlgoConfig,
                with_stats: bool = True):
    """Target policy and values recomputed over [T+1, N]; V-trace targets and advantages."""
    params, values, _ = model(batch["obs"], batch["first"], batch.start_state)
    logp, entropy = model.policy.log_prob_entropy(params[:-1], batch["actions"])
    vs, advantages = vtrace(batch["logp"], logp.detach(), batch["rewards"], values.detach(),
                            batch["terminated"], batch["truncated"], cfg.gamma,
                            rho_bar=cfg.vtrace_rho, c_bar=cfg.vtrace_c, lam=cfg.gae_lambda)
    loss, stats = actor_critic_loss(logp, entropy, values[:-1], advantages, vs, batch["valid"],
                                    cfg.vf_coef, cfg.ent_coef, cfg.normalize_advantage,
                                    with_stats)
    if not with_stats:
        return loss, stats
    with torch.no_grad():
        mask = batch["valid"].float()
        ratio = (logp.detach() - batch["logp"]).exp()
        stats["diag/importance_ratio"] = (ratio * mask).sum() / mask.sum().clamp(min=1.0)
    return loss, stats


# ---------------------------------------------------------------- the learner

class CentralLearner(OptimizerState):
    """mode="trajectories" (IMPALA): the V-trace loss on a batch of trajectories.
    mode="gradients" (A3C on Ray): apply the gradient a worker computed."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, cfg,
                 device: torch.device, mode: str):
        self.model, self.optimizer, self.cfg, self.device, self.mode = \
            model, optimizer, cfg, device, mode
        self.params = [p for p in model.parameters() if p.requires_grad]

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        self.optimizer.zero_grad(set_to_none=True)
        if self.mode == "trajectories":
            loss, stats = impala_loss(self.model, collate(collected.trajectories(), self.device),
                                      self.cfg.algo, with_stats=log_now)
            loss.backward()
        else:
            item = collected.gradient()
            grads = torch.tensor(item.grads, device=self.device)  # Ray: read-only
            offset = 0
            for p in self.model.parameters():
                p.grad = grads[offset:offset + p.numel()].view_as(p).clone()
                offset += p.numel()
            loss, stats = torch.tensor(item.loss), dict(item.stats)
        apply_update(self.model, self.optimizer, self.params, loss, stats, self.cfg, update,
                     log_now)
        return stats


def run_learner(session, model: nn.Module, resume, source: ExperienceSource,
                mode: str = "trajectories") -> None:
    """The learner in the driver process, on the one loop.

    mode="trajectories" (IMPALA): batch `algo.learner_batch` trajectories, V-trace loss,
    one optimizer step. mode="gradients" (A3C on Ray): apply each worker gradient as it
    arrives. Either way the new parameters are published after every step.
    """
    cfg = session.cfg
    optimizer = make_optimizer(model.parameters(), cfg.algo)
    if resume is not None:
        load_optimizer(optimizer, resume)
        torch.set_rng_state(resume.tensors["extra.rng_torch"])
        session.progress.message("resume: the workers' envs start new episodes")
    batch_size = cfg.algo.learner_batch if mode == "trajectories" else 1
    sampler = ActorsSampler(source, model, session.updates, batch_size, cfg.run.backend)
    run_loop(session, model, sampler, CentralLearner(model, optimizer, cfg, session.device,
                                                     mode))



def run_impala(session, model: nn.Module, resume=None) -> None:
    """IMPALA with local actor processes (Ray actors: distributed.ray_backend.run_ray)."""
    source = LocalActors(session.cfg, session.updates)
    try:
        run_learner(session, model, resume, source, mode="trajectories")
    finally:
        source.close()
