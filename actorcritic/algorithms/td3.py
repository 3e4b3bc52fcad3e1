"""Twin Delayed DDPG (Fujimoto et al. 2018): a deterministic actor, twin Q critics, target
policy smoothing, and actor and target updates delayed to every `algo.policy_delay` critic
updates. Acting adds Gaussian exploration noise (`algo.exploration_noise`, in units of half
the Box's width, as CleanRL scales it).

One gradient step, on a minibatch (obs, a, r, obs', terminated) from the replay buffer:

    a'          = clip(mu_targ(obs') + clip(N(0, target_policy_noise), +-target_noise_clip))
    y           = r + gamma (1 - terminated) min_i Qtarg_i(obs', a')
    critic loss = sum_i mean (Q_i(obs, a) - y)^2
    every policy_delay steps:
      actor loss = -mean Q_1(obs, mu(obs))
      targets (actor and critics) <- (1 - tau) targets + tau online
"""

from __future__ import annotations

import copy

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


def smoothed_target_action(target_unit_action: torch.Tensor, noise: torch.Tensor,
                           noise_clip: float) -> torch.Tensor:
    """Target policy smoothing, in the actor's [-1, 1] units: the target actor's action
    plus noise clipped to +-noise_clip, clipped back into [-1, 1]."""
    return (target_unit_action + noise.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


def td3_critic_target(rewards: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor,
                      gamma: float) -> torch.Tensor:
    """y = r + gamma (1 - terminated) min over the twins of next_q [2, B]."""
    return bootstrap_target(rewards, terminated, next_q.min(0).values, gamma)


def td3_actor_loss(q1: torch.Tensor) -> torch.Tensor:
    """-mean Q_1(obs, mu(obs)): the first critic alone steers the actor."""
    return -q1.mean()


class TD3Learner(Optimizers):
    def __init__(self, model: OffPolicyActorCritic, cfg: Config, device: torch.device,
                 action_dim: int):
        self.model, self.cfg, self.device = model, cfg, device
        self.target = copy.deepcopy(model).requires_grad_(False)  # actor and critics
        self.actor_params = [*model.actor_trunk.parameters(), *model.policy.parameters()]
        self.critic_params = list(model.critics.parameters())
        self.online_params = [*self.actor_params, *self.critic_params]
        self.target_params = [*self.target.actor_trunk.parameters(),
                              *self.target.policy.parameters(),
                              *self.target.critics.parameters()]
        super().__init__(actor=make_optimizer(self.actor_params, cfg.algo),
                         critic=make_optimizer(self.critic_params, cfg.algo))
        self.gradient_steps = 0
        self.policy_delay = cfg.algo.policy_delay or 2

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        return learn_from_replay(collected, self.cfg.algo.batch_size, self.device,
                                 lambda batch: self.gradient_step(batch, update), log_now)

    def gradient_step(self, batch: dict[str, torch.Tensor], update: int) -> Stats:
        algo, model, opt = self.cfg.algo, self.model, self.optimizers
        with torch.no_grad():
            target_unit = self.target.policy(self.target.features(batch["next_obs"]))
            noise = torch.randn(target_unit.shape, device=target_unit.device) \
                * algo.target_policy_noise
            next_unit = smoothed_target_action(target_unit, noise, algo.target_noise_clip)
            next_q = self.target.critics(batch["next_obs"], model.to_env_units(next_unit))
            target = td3_critic_target(batch["rewards"] * algo.reward_scale,
                                       batch["terminated"], next_q, algo.gamma)
        q = model.critics(batch["obs"], batch["actions"])
        critic_loss = twin_critic_loss(q, target)
        descend(opt["critic"], critic_loss, self.critic_params, algo.max_grad_norm, "critic",
                update, self.cfg.run.nan_guard)
        self.gradient_steps += 1
        stats: Stats = {"losses/critic": critic_loss.detach(), "diag/q_mean": q.detach().mean()}
        if self.gradient_steps % self.policy_delay == 0:
            stats["losses/actor"] = self._actor_step(batch["obs"], update)
            polyak_update(self.target_params, self.online_params, algo.tau)
        return stats

    def _actor_step(self, obs: torch.Tensor, update: int) -> torch.Tensor:
        model, opt = self.model, self.optimizers
        with frozen(self.critic_params):
            actor_loss = td3_actor_loss(model.critics.first(obs, model.greedy_action(obs)))
        descend(opt["actor"], actor_loss, self.actor_params, self.cfg.algo.max_grad_norm,
                "actor", update, self.cfg.run.nan_guard)
        return actor_loss.detach()

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        super().add_state(tensors, meta)
        tensors.update({f"learner.target.{k}": v for k, v in self.target.state_dict().items()})
        meta["gradient_steps"] = self.gradient_steps

    def load_state(self, ckpt) -> None:
        self.load(ckpt)
        self.target.load_state_dict(ckpt.section("learner.target"))
        self.gradient_steps = ckpt.meta["gradient_steps"]
