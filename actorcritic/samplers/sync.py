"""The synchronous sampler of A2C and PPO (and of each A3C worker): this thread steps the
envs and acts (torch, the NumPy actor, or torch recording its layer outputs for replay);
with `algo.processes` the helper processes collect their share of the envs at the same
time (processes.py). It hands the learner `Collected(data=Rollout)`.
"""

from __future__ import annotations

import torch
from torch import nn

from actorcritic.accelerators.numpy_acting import NumpyActor
from actorcritic.envs import snapshot as env_snapshot
from actorcritic.envs.actions import ActionAdapter
from actorcritic.run.loop import Collected
from actorcritic.samplers.processes import Helpers
from actorcritic.samplers.rollout import (
    Carry,
    RewardTransform,
    RolloutBuffer,
    collect_rollout,
)


class SyncSampler:
    """Rollouts collected in this thread. Its state (the carry between rollouts, the NumPy
    actor's random stream, the envs' snapshot) goes into checkpoints, so a resumed run is
    the run that was never interrupted, unless helpers step part of the envs."""

    def __init__(self, envs, model: nn.Module, carry: Carry, buf: RolloutBuffer, cfg,
                 keep_graph: bool, rewards: RewardTransform, actor: NumpyActor | None = None,
                 helpers: Helpers | None = None, version: int = 0):
        self.envs, self.model, self.carry, self.buf, self.cfg = envs, model, carry, buf, cfg
        self.keep_graph, self.rewards, self.actor, self.helpers = keep_graph, rewards, actor, \
            helpers
        self.to_env = ActionAdapter(envs.single_action_space)
        self.steps = cfg.algo.num_steps * cfg.env.num_envs  # with the helpers' envs
        self.version = version  # updates made before the next rollout acts
        self.count = 0

    def next(self, log_now: bool) -> Collected:
        if self.helpers is not None:
            self.helpers.start_rollouts(log_now)
        rollout = collect_rollout(self.envs, self.model, self.buf, self.carry, self.to_env,
                                  self.cfg.run.nan_guard, keep_graph=self.keep_graph,
                                  actor=self.actor, rewards=self.rewards)
        rollout.version, rollout.index = self.version, self.count
        self.count += 1
        episodes = [(0, rollout.episodes)]
        if self.helpers is not None:  # they computed their gradients meanwhile
            episodes += self.helpers.rollouts_done()
        return Collected(self.steps, rollout, episodes)

    def publish(self, version: int, model: nn.Module) -> None:
        """The model acts here (and the helpers share its memory): nothing to send."""
        self.version = version

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        if self.helpers is not None:  # the helpers' envs are elsewhere: no env state
            return
        tensors.update(self.rewards.state_tensors())
        tensors.update(carry_tensors(self.carry))
        if self.actor is not None:
            meta["numpy_actor_rng"] = self.actor.get_state()
        env_snapshot.add_to_checkpoint(self.envs, tensors, meta)

    def stop(self) -> None:
        """Nothing steps the model but the learner here."""

    def close(self) -> None:
        try:
            if self.helpers is not None:
                self.helpers.close()
        finally:
            self.envs.close()


def carry_tensors(carry: Carry) -> dict[str, torch.Tensor]:
    out = {"extra.carry.obs": carry.obs, "extra.carry.first": carry.first,
           "extra.carry.reset_next": carry.reset_next}
    out.update({f"extra.carry.state.{i}": s for i, s in enumerate(carry.state)})
    return out


def restore_carry(carry: Carry, ckpt, device: torch.device) -> None:
    t = ckpt.tensors
    carry.obs.copy_(t["extra.carry.obs"])
    carry.first.copy_(t["extra.carry.first"])
    carry.reset_next.copy_(t["extra.carry.reset_next"])
    carry.state = tuple(t[f"extra.carry.state.{i}"].to(device) for i in range(len(carry.state)))
