"""Soft Actor-Critic (Haarnoja et al. 2018, with the automatic temperature of their second
paper): twin Q critics with Polyak-averaged targets, a tanh-squashed Gaussian actor, and
an entropy temperature alpha tuned toward a target entropy (-dim(A) by default).

One gradient step, on a minibatch (obs, a, r, obs', terminated) from the replay buffer:

    a', logp'   ~ pi(obs')                                   (no gradient)
    y           = r + gamma (1 - terminated) (min_i Qtarg_i(obs', a') - alpha logp')
    critic loss = sum_i mean (Q_i(obs, a) - y)^2
    every policy_delay steps:
      a~, logp~ ~ pi(obs)                                    (reparameterized)
      actor loss  = mean (alpha logp~ - min_i Q_i(obs, a~))
      alpha loss  = -mean (log_alpha (logp~ + target_entropy))
    Qtarg <- (1 - tau) Qtarg + tau Q

The pure functions below are what the tests check against a plain computation.
"""

from __future__ import annotations

import copy
import math

import torch

from actorcritic.algorithms.twin_critics import (
    Optimizers,
    bootstrap_target,
    descend,
    frozen,
    learn_from_replay,
    polyak_update,
    twin_critic_loss,
)
from actorcritic.algorithms.update import make_optimizer
from actorcritic.config import Config
from actorcritic.models.off_policy import OffPolicyActorCritic
from actorcritic.run.loop import Stats
from actorcritic.samplers.experience import Collected


def sac_critic_target(rewards: torch.Tensor, terminated: torch.Tensor,
                      next_q: torch.Tensor, next_logp: torch.Tensor, alpha: torch.Tensor,
                      gamma: float) -> torch.Tensor:
    """y = r + gamma (1 - terminated) (min over the twins of next_q [2, B] - alpha logp')."""
    return bootstrap_target(rewards, terminated, next_q.min(0).values - alpha * next_logp,
                            gamma)


def sac_actor_loss(q: torch.Tensor, logp: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """mean(alpha logp - min_i Q_i(obs, a~)), q [2, B] at the actor's fresh actions."""
    return (alpha * logp - q.min(0).values).mean()


def sac_alpha_loss(log_alpha: torch.Tensor, logp: torch.Tensor, target_entropy: float
                   ) -> torch.Tensor:
    """-mean(log_alpha (logp + target_entropy)): alpha grows while the policy's entropy
    (-logp) is below the target, and shrinks above it (Stable-Baselines3's form)."""
    return -(log_alpha * (logp.detach() + target_entropy)).mean()


class SACLearner(Optimizers):
    def __init__(self, model: OffPolicyActorCritic, cfg: Config, device: torch.device,
                 action_dim: int):
        algo = cfg.algo
        self.model, self.cfg, self.device = model, cfg, device
        self.target_critics = copy.deepcopy(model.critics).requires_grad_(False)
        self.actor_params = [*model.actor_trunk.parameters(), *model.policy.parameters()]
        self.critic_params = list(model.critics.parameters())
        self.log_alpha = torch.tensor(math.log(algo.init_alpha), device=device,
                                      requires_grad=algo.autotune_alpha)
        self.target_entropy = -float(action_dim) if algo.target_entropy is None \
            else algo.target_entropy
        optimizers = {"actor": make_optimizer(self.actor_params, algo),
                      "critic": make_optimizer(self.critic_params, algo)}
        if algo.autotune_alpha:
            optimizers["alpha"] = make_optimizer([self.log_alpha], algo)
        super().__init__(**optimizers)
        self.gradient_steps = 0  # made so far (the actor steps every policy_delay of them)
        self.policy_delay = algo.policy_delay or 1

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        return learn_from_replay(collected, self.cfg.algo.batch_size, self.device,
                                 lambda batch: self.gradient_step(batch, update), log_now)

    def gradient_step(self, batch: dict[str, torch.Tensor], update: int) -> Stats:
        algo, model, opt = self.cfg.algo, self.model, self.optimizers
        alpha = self.log_alpha.detach().exp()
        rewards = batch["rewards"] * algo.reward_scale
        with torch.no_grad():
            next_action, next_logp = model.sample_action(batch["next_obs"])
            next_q = self.target_critics(batch["next_obs"], next_action)
            target = sac_critic_target(rewards, batch["terminated"], next_q, next_logp,
                                       alpha, algo.gamma)
        q = model.critics(batch["obs"], batch["actions"])
        critic_loss = twin_critic_loss(q, target)
        descend(opt["critic"], critic_loss, self.critic_params, algo.max_grad_norm, "critic",
                update, self.cfg.run.nan_guard)
        self.gradient_steps += 1
        stats: Stats = {"losses/critic": critic_loss.detach(), "diag/q_mean": q.detach().mean(),
                        "charts/alpha": alpha}
        if self.gradient_steps % self.policy_delay == 0:
            stats.update(self._actor_step(batch["obs"], alpha, update))
        polyak_update(list(self.target_critics.parameters()), self.critic_params, algo.tau)
        return stats

    def _actor_step(self, obs: torch.Tensor, alpha: torch.Tensor, update: int) -> Stats:
        algo, opt = self.cfg.algo, self.optimizers
        action, logp = self.model.sample_action(obs)
        with frozen(self.critic_params):
            actor_loss = sac_actor_loss(self.model.critics(obs, action), logp, alpha)
        descend(opt["actor"], actor_loss, self.actor_params, algo.max_grad_norm, "actor",
                update, self.cfg.run.nan_guard)
        stats: Stats = {"losses/actor": actor_loss.detach(), "losses/entropy": -logp.detach()
                        .mean()}
        if algo.autotune_alpha:
            alpha_loss = sac_alpha_loss(self.log_alpha, logp, self.target_entropy)
            descend(opt["alpha"], alpha_loss, [self.log_alpha], 0.0, "temperature", update,
                    self.cfg.run.nan_guard)
            stats["losses/alpha"] = alpha_loss.detach()
        return stats

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        super().add_state(tensors, meta)
        tensors.update({f"learner.target_critics.{k}": v
                        for k, v in self.target_critics.state_dict().items()})
        tensors["learner.log_alpha"] = self.log_alpha.detach()
        meta["gradient_steps"] = self.gradient_steps

    def load_state(self, ckpt) -> None:
        self.load(ckpt)
        self.target_critics.load_state_dict(ckpt.section("learner.target_critics"))
        with torch.no_grad():
            self.log_alpha.copy_(ckpt.tensors["learner.log_alpha"])
        self.gradient_steps = ckpt.meta["gradient_steps"]
