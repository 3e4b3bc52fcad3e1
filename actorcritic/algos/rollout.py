"""Rollout collection into preallocated time-major tensors, shared by every algorithm."""

from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from actorcritic.envs.vector import Episode, VecEnv
from actorcritic.errors import NonFiniteError
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.models.cores import State
from actorcritic.models.numpy_actor import NumpyActor
from actorcritic.models.replay import recording, replay, supports_replay


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
        # With collect_rollout(keep_graph=True): the acting forward passes, still attached to
        # the autograd graph: policy params [T, N, P] and values [T+1, N] (row T detached).
        self.acted: tuple[torch.Tensor, torch.Tensor] | None = None
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


class ActionAdapter:
    """Turns action arrays into what the env expects (clipped floats for Box)."""

    def __init__(self, space: gym.Space):
        self.box = isinstance(space, gym.spaces.Box)
        if self.box:
            self.low, self.high = space.low, space.high

    def __call__(self, action: torch.Tensor | np.ndarray) -> np.ndarray:
        a = action.cpu().numpy() if isinstance(action, torch.Tensor) else action
        return np.clip(a, self.low, self.high) if self.box else a


def check_finite(name: str, array: np.ndarray, step: int) -> None:
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise NonFiniteError(f"non-finite {name} from the environment at env index {bad[0]}, "
                             f"rollout step {step}")


def collect_rollout(envs: VecEnv, model: ActorCritic, buf: RolloutBuffer, carry: Carry,
                    to_env: ActionAdapter, nan_guard: bool = True,
                    keep_graph: bool = False, actor: NumpyActor | None = None,
                    reward_scale: float = 1.0, generator: torch.Generator | None = None
                    ) -> list[Episode]:
    """Act for buf.num_steps steps from `carry`, filling `buf`; updates `carry` in place.

    With `keep_graph` (feedforward models only) the forward passes made while acting are
    kept in `buf.acted` with their autograd graph, so the update can backpropagate through
    them instead of running the whole rollout through the network a second time. The
    parameters do not change during a rollout, so the gradient is the same. CNN encoders
    record their layer outputs and replay them as one batch (models/replay.py); other
    models act with autograd on. With `actor` (small MLP policies on the CPU) acting runs
    in NumPy. The rewards stored are the env's times `reward_scale` (what returns and losses
    see; episode statistics come from the env and stay raw). Torch policies sample from
    `generator` (default: torch's global random stream).
    """
    episodes: list[Episode] = []
    b = buf.np
    device = carry.state[0].device if carry.state else buf.device
    on_cpu = device.type == "cpu"
    buf.start_state = carry.state
    state = carry.state
    buf.obs[0].copy_(carry.obs)
    first = carry.first.cpu().numpy().copy()
    reset_next = carry.reset_next.cpu().numpy().copy()
    check_obs = nan_guard and b.obs.dtype.kind == "f"
    replaying = keep_graph and supports_replay(model)
    acted_params: list[torch.Tensor] = []
    acted_values: list[torch.Tensor] = []
    with recording(model) if replaying else contextlib.nullcontext() as rec:
        for t in range(buf.num_steps):
            b.first[t] = first
            b.valid[t] = ~reset_next
            if actor is not None:
                action, logp, value = actor(b.obs[t])
            else:
                obs_t, first_t = buf.obs[t], buf.first[t]
                if not on_cpu:
                    obs_t, first_t = obs_t.to(device, non_blocking=True), first_t.to(device)
                if keep_graph:
                    with torch.no_grad() if replaying else contextlib.nullcontext():
                        params, value, state = model(obs_t[None], first_t[None], state)
                    if not replaying:
                        acted_params.append(params[0])
                        acted_values.append(value[0])
                    with torch.no_grad():
                        action, logp = model.policy.sample_with_logp(params[0].detach(),
                                                                     generator=generator)
                    value = value[0].detach()
                else:
                    action, logp, value, state = model.act(obs_t, first_t, state,
                                                           generator=generator)
                action, logp, value = action.cpu().numpy(), logp.cpu().numpy(), value.cpu().numpy()
            b.actions[t] = action
            b.logp[t] = logp
            b.values[t] = value
            obs, reward, terminated, truncated, finished = envs.step(to_env(b.actions[t]))
            if nan_guard:
                check_finite("reward", reward, t)
                if check_obs:
                    check_finite("observation", obs, t)
            b.obs[t + 1] = obs
            b.rewards[t] = reward if reward_scale == 1.0 else reward * reward_scale
            b.terminated[t] = terminated
            b.truncated[t] = truncated
            first = reset_next
            reset_next = ~reset_next & (terminated | truncated)
            if finished:
                episodes.extend(finished)
    b.first[-1] = first
    if keep_graph:
        last_obs, last_first = buf.obs[-1], buf.first[-1]
        if not on_cpu:
            last_obs, last_first = last_obs.to(device), last_first.to(device)
        with torch.no_grad():
            _, bootstrap, _ = model(last_obs[None], last_first[None], state)
        if replaying:
            params, values = replay(model, rec, buf.num_steps, buf.num_envs)
        else:
            params, values = torch.stack(acted_params), torch.stack(acted_values)
        buf.acted = (params, torch.cat([values, bootstrap]))
    carry.obs.copy_(buf.obs[-1])
    carry.first.copy_(torch.from_numpy(first))
    carry.reset_next.copy_(torch.from_numpy(reset_next))
    carry.state = state
    return episodes
