"""A2C's samplers: where a rollout comes from.

- `SyncSampler`: this thread steps the envs and acts (torch, the NumPy actor, or torch
  recording its layer outputs for replay); with `algo.processes` the helper processes
  collect their share of the envs at the same time.
- `OverlapSampler`: an acting thread collects the next rollout while the update runs
  (algo.overlap; overlap.py).

Both hand the learner `Collected(data=(buffer, model that acted, token))`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from actorcritic.algos.overlap import OverlappedRollouts
from actorcritic.algos.rollout import (
    Carry,
    RewardTransform,
    RolloutBuffer,
    collect_rollout,
)
from actorcritic.envs import snapshot as env_snapshot
from actorcritic.envs.actions import ActionAdapter
from actorcritic.models.numpy_actor import NumpyActor
from actorcritic.run.loop import Collected


class SyncSampler:
    """Rollouts collected in this thread. Its state (the carry between rollouts, the NumPy
    actor's random stream, the envs' snapshot) goes into checkpoints, so a resumed run is
    the run that was never interrupted, unless helpers step part of the envs."""

    def __init__(self, envs, model: nn.Module, carry: Carry, buf: RolloutBuffer, cfg,
                 keep_graph: bool, rewards: RewardTransform, actor: NumpyActor | None = None,
                 helpers=None):
        self.envs, self.model, self.carry, self.buf, self.cfg = envs, model, carry, buf, cfg
        self.keep_graph, self.rewards, self.actor, self.helpers = keep_graph, rewards, actor, \
            helpers
        self.to_env = ActionAdapter(envs.single_action_space)
        self.steps = cfg.algo.num_steps * cfg.env.num_envs

    def next(self, log_now: bool) -> Collected:
        if self.helpers is not None:
            self.helpers.start_rollouts(log_now)
        episodes = collect_rollout(self.envs, self.model, self.buf, self.carry, self.to_env,
                                   self.cfg.run.nan_guard, keep_graph=self.keep_graph,
                                   actor=self.actor, rewards=self.rewards)
        return Collected(self.steps, (self.buf, self.model, None), [(0, episodes)])

    def publish(self, version: int, model: nn.Module) -> None:
        """The model acts here (and the helpers share its memory): nothing to send."""

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        if self.helpers is not None:  # the helpers' envs are elsewhere: no env state
            return
        tensors.update(self.rewards.state_tensors())
        tensors.update(carry_tensors(self.carry))
        if self.actor is not None:
            meta["numpy_actor_rng"] = self.actor.get_state()
        if env_snapshot.can_snapshot(self.envs):
            arrays, values = env_snapshot.capture(self.envs)
            tensors.update({f"env.{k}": torch.from_numpy(np.array(v))
                            for k, v in arrays.items()})
            meta["env_snapshot"] = values

    def stop(self) -> None:
        """Nothing steps the model but the learner here."""

    def close(self) -> None:
        try:
            if self.helpers is not None:
                self.helpers.close()
        finally:
            self.envs.close()


class OverlapSampler:
    """Rollout k+1 is acted on another thread, by a copy holding the parameters from
    before update k, while update k runs. Checkpoints keep no env state."""

    def __init__(self, envs, model: nn.Module, carry: Carry, buf: RolloutBuffer, cfg,
                 keep_graph: bool, rewards: RewardTransform, acting_rng: torch.Generator):
        to_env = ActionAdapter(envs.single_action_space)

        def collect(acting_model: nn.Module, rollout: RolloutBuffer) -> list:
            return collect_rollout(envs, acting_model, rollout, carry, to_env,
                                   cfg.run.nan_guard, keep_graph=keep_graph, rewards=rewards,
                                   generator=acting_rng)

        second = RolloutBuffer(cfg.algo.num_steps, envs.num_envs,
                               envs.single_observation_space, envs.single_action_space,
                               buf.device)
        self.envs, self.rewards = envs, rewards
        self.overlap = OverlappedRollouts(model, (buf, second), collect)
        self.steps = cfg.algo.num_steps * cfg.env.num_envs

    def next(self, log_now: bool) -> Collected:
        c = self.overlap.next()
        return Collected(self.steps, (c.buf, c.model, c), [(0, c.episodes)])

    def publish(self, version: int, model: nn.Module) -> None:
        """The learner hands each acting copy the new parameters (OverlapLearner)."""

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """The envs are stepped on the acting thread: no env state in checkpoints, only
        the reward statistics (a checkpoint is written between rollouts' hand-overs, so
        they can be one rollout ahead of the update)."""
        tensors.update(self.rewards.state_tensors())

    def stop(self) -> None:
        """The acting thread only acts: it stops in close(), after the final checkpoint."""

    def close(self) -> None:
        try:
            self.overlap.close()
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
