"""Rollout collection into preallocated time-major tensors, shared by every algorithm, and
`Rollout`, what a sampler hands a learner (A2C, PPO, the A3C workers)."""

from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from actorcritic.accelerators.numpy_acting import NumpyActor
from actorcritic.accelerators.replay import recording, replay, supports_replay
from actorcritic.algorithms.reward_scaling import ConstantScale, ReturnScale
from actorcritic.envs.actions import ActionAdapter
from actorcritic.envs.vector import Episode, VecEnv
from actorcritic.errors import NonFiniteError
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.models.cores import State

RewardTransform = ConstantScale | ReturnScale


@dataclass
class Carry:
    """What links one rollout to the next, per env: [N, ...] tensors."""

    obs: torch.Tensor          # the observation the next step acts on
    first: torch.Tensor        # bool: obs is the first of an episode (reset recurrent state)
    reset_next: torch.Tensor   # bool: the last step ended an episode, so the next is a reset
    state: State               # recurrent state before acting on obs

    @classmethod
    def start(cls, obs: np.ndarray, model: ActorCritic, device: torch.device) -> Carry:
        n = obs.shape[0]
        return cls(torch.as_tensor(obs, device=device).clone(),
                   torch.ones(n, dtype=torch.bool, device=device),
                   torch.zeros(n, dtype=torch.bool, device=device),
                   model.initial_state(n, device))


class RolloutBuffer:
    """Time-major rollout storage on the CPU: obs/first [T+1, N, ...] (row T is the
    bootstrap observation), everything else [T, N]; `start_state` is the recurrent state
    before row 0. Every tensor has a NumPy view in `self.np`, so the per-step bookkeeping
    costs NumPy microseconds instead of torch dispatches; `to(device)` gives the training
    batch."""

    NAMES = ("obs", "first", "actions", "logp", "values", "rewards", "terminated", "truncated",
             "valid")

    def __init__(self, num_steps: int, num_envs: int, obs_space: gym.Space,
                 action_space: gym.Space, device: torch.device | str = "cpu"):
        T, N = num_steps, num_envs
        obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
        self.obs = torch.zeros((T + 1, N, *obs_space.shape), dtype=obs_dtype)
        self.first = torch.zeros((T + 1, N), dtype=torch.bool)
        if isinstance(action_space, gym.spaces.Discrete):
            self.actions = torch.zeros((T, N), dtype=torch.long)
        elif isinstance(action_space, gym.spaces.MultiDiscrete):
            self.actions = torch.zeros((T, N, len(action_space.nvec)), dtype=torch.long)
        else:
            self.actions = torch.zeros((T, N, *action_space.shape))
        self.logp = torch.zeros((T, N))
        self.values = torch.zeros((T, N))
        self.rewards = torch.zeros((T, N))
        self.terminated = torch.zeros((T, N), dtype=torch.bool)
        self.truncated = torch.zeros((T, N), dtype=torch.bool)
        self.valid = torch.zeros((T, N), dtype=torch.bool)
        self.start_state: State = ()
        self.num_steps, self.num_envs = T, N
        self.device = torch.device(device)
        self.np = types.SimpleNamespace(**{n: getattr(self, n).numpy() for n in self.NAMES})

    def to(self, device: torch.device | str) -> RolloutBuffer | types.SimpleNamespace:
        """The batch on `device` (the buffer itself on the CPU)."""
        device = torch.device(device)
        if device.type == "cpu":
            return self
        batch = {n: getattr(self, n).to(device, non_blocking=True) for n in self.NAMES}
        batch["start_state"] = tuple(s.to(device) for s in self.start_state)
        return types.SimpleNamespace(**batch, num_steps=self.num_steps, num_envs=self.num_envs)


class ActingPasses(NamedTuple):
    """The forward passes made while acting, kept for the update (algo.reuse_acting_graph):
    attached to the autograd graph, or replayed as one batch from recorded layer outputs."""

    params: torch.Tensor  # policy parameters [T, N, P]
    values: torch.Tensor  # [T+1, N]; row T, the bootstrap value, detached


@dataclass
class Rollout:
    """One rollout, from the sampler that collected it to the learner.

    `buffer` holds it time-major: obs and first [T+1, N, ...] (row T is the bootstrap
    observation), the rest [T, N], and `buffer.start_state`, the recurrent state before
    row 0. `model` is the model that acted: the trained model, or with algo.overlap the
    acting copy, at the parameters of `version` (the number of updates made before)."""

    buffer: RolloutBuffer
    model: nn.Module
    episodes: list[Episode]
    acted: ActingPasses | None = None  # when recorded (algo.reuse_acting_graph)
    version: int = 0
    index: int = 0  # the sampler's count of its rollouts (algo.overlap: which copy acted)


def check_finite(name: str, array: np.ndarray, step: int) -> None:
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise NonFiniteError(f"non-finite {name} from the environment at env index {bad[0]}, "
                             f"rollout step {step}")


class TorchActing:
    """Acting with `model.act`: one inference-mode forward pass per step."""

    def __init__(self, model: ActorCritic, state: State, device: torch.device,
                 generator: torch.Generator | None):
        self.model, self.state, self.device, self.generator = model, state, device, generator

    def inputs(self, buf: RolloutBuffer, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        obs_t, first_t = buf.obs[t], buf.first[t]
        if self.device.type != "cpu":
            obs_t, first_t = obs_t.to(self.device, non_blocking=True), first_t.to(self.device)
        return obs_t, first_t

    def step(self, buf: RolloutBuffer, t: int):
        action, logp, value, self.state = self.model.act(*self.inputs(buf, t), self.state,
                                                         generator=self.generator)
        return action.cpu().numpy(), logp.cpu().numpy(), value.cpu().numpy()

    def finish(self, buf: RolloutBuffer, rec) -> ActingPasses | None:
        return None


class KeptGraphActing(TorchActing):
    """Acting whose forward passes the update reuses: kept with their autograd graph, or
    (CNNs, `replaying`) recorded layer by layer and replayed as one batch (replay.py)."""

    def __init__(self, model: ActorCritic, state: State, device: torch.device,
                 generator: torch.Generator | None, replaying: bool):
        super().__init__(model, state, device, generator)
        self.replaying = replaying
        self.params: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def step(self, buf: RolloutBuffer, t: int):
        obs_t, first_t = self.inputs(buf, t)
        with torch.no_grad() if self.replaying else contextlib.nullcontext():
            params, value, self.state = self.model(obs_t[None], first_t[None], self.state)
        if not self.replaying:
            self.params.append(params[0])
            self.values.append(value[0])
        with torch.no_grad():
            action, logp = self.model.policy.sample_with_logp(params[0].detach(),
                                                              generator=self.generator)
        return action.cpu().numpy(), logp.cpu().numpy(), value[0].detach().cpu().numpy()

    def finish(self, buf: RolloutBuffer, rec) -> ActingPasses:
        last_obs, last_first = self.inputs(buf, buf.num_steps)
        with torch.no_grad():
            _, bootstrap, _ = self.model(last_obs[None], last_first[None], self.state)
        if self.replaying:
            params, values = replay(self.model, rec, buf.num_steps, buf.num_envs)
        else:
            params, values = torch.stack(self.params), torch.stack(self.values)
        return ActingPasses(params, torch.cat([values, bootstrap]))


class NumpyActing:
    """Acting in NumPy (small MLP policies on the CPU; accelerators/numpy_acting.py)."""

    def __init__(self, actor: NumpyActor, state: State):
        self.actor, self.state = actor, state

    def step(self, buf: RolloutBuffer, t: int):
        return self.actor(buf.np.obs[t])

    def finish(self, buf: RolloutBuffer, rec) -> None:
        return None


def collect_rollout(envs: VecEnv, model: ActorCritic, buf: RolloutBuffer, carry: Carry,
                    to_env: ActionAdapter, nan_guard: bool = True, *,
                    keep_graph: bool = False, actor: NumpyActor | None = None,
                    rewards: RewardTransform | None = None,
                    generator: torch.Generator | None = None) -> Rollout:
    """Act for buf.num_steps steps from `carry`, filling `buf`; updates `carry` in place.

    How the policy acts is one of three backends, picked here: `actor` (small MLP policies
    on the CPU) acts in NumPy; with `keep_graph` (feedforward models only) the forward
    passes made while acting are kept in `Rollout.acted` (CNN encoders record their layer
    outputs and replay them as one batch, accelerators/replay.py; other models keep autograd
    on), so the update backpropagates through them instead of running the rollout
    through the network a second time (the parameters do not change during a rollout, so
    the gradient is the same); otherwise `model.act`. The rewards stored are the env's
    through `rewards` (a constant factor or the return scaling of reward_scaling.py: what
    returns and losses see; episode statistics come from the env and stay raw). Torch policies sample from `generator` (default: torch's global
    random stream).
    """
    device = carry.state[0].device if carry.state else buf.device
    replaying = keep_graph and supports_replay(model)
    if actor is not None:
        acting = NumpyActing(actor, carry.state)
    elif keep_graph:
        acting = KeptGraphActing(model, carry.state, device, generator, replaying)
    else:
        acting = TorchActing(model, carry.state, device, generator)
    buf.start_state = carry.state
    buf.obs[0].copy_(carry.obs)
    first = carry.first.cpu().numpy().copy()
    reset_next = carry.reset_next.cpu().numpy().copy()
    with recording(model) if replaying else contextlib.nullcontext() as rec:
        episodes, first, reset_next = _steps(envs, buf, acting, to_env, first, reset_next,
                                             nan_guard, rewards or ConstantScale(1.0))
    buf.np.first[-1] = first
    acted = acting.finish(buf, rec) if keep_graph else None
    carry.obs.copy_(buf.obs[-1])
    carry.first.copy_(torch.from_numpy(first))
    carry.reset_next.copy_(torch.from_numpy(reset_next))
    carry.state = acting.state
    return Rollout(buf, model, episodes, acted)


def _steps(envs: VecEnv, buf: RolloutBuffer, acting, to_env: ActionAdapter, first: np.ndarray,
           reset_next: np.ndarray, nan_guard: bool, rewards: RewardTransform):
    """The per-step loop of `collect_rollout`: act, step the envs, store."""
    episodes: list[Episode] = []
    b = buf.np
    check_obs = nan_guard and b.obs.dtype.kind == "f"
    for t in range(buf.num_steps):
        b.first[t] = first
        b.valid[t] = ~reset_next
        b.actions[t], b.logp[t], b.values[t] = acting.step(buf, t)
        obs, reward, terminated, truncated, finished = envs.step(to_env(b.actions[t]))
        if nan_guard:
            check_finite("reward", reward, t)
            if check_obs:
                check_finite("observation", obs, t)
        b.obs[t + 1] = obs
        b.terminated[t] = terminated
        b.truncated[t] = truncated
        b.rewards[t] = rewards(reward, terminated, truncated)
        first = reset_next
        reset_next = ~reset_next & (terminated | truncated)
        if finished:
            episodes.extend(finished)
    return episodes, first, reset_next
