"""Rollout collection into preallocated time-major tensors, shared by every algorithm."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from actorcritic.envs.vector import Episode, VecEnv
from actorcritic.errors import NonFiniteError
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.models.cores import State


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
    """Time-major buffers: obs/first [T+1, N, ...] (row T is the bootstrap observation),
    everything else [T, N]. `start_state` is the recurrent state before row 0."""

    def __init__(self, num_steps: int, num_envs: int, obs_space: gym.Space,
                 action_space: gym.Space, device: torch.device):
        T, N = num_steps, num_envs
        obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
        self.obs = torch.zeros((T + 1, N, *obs_space.shape), dtype=obs_dtype, device=device)
        self.first = torch.zeros((T + 1, N), dtype=torch.bool, device=device)
        if isinstance(action_space, gym.spaces.Discrete):
            self.actions = torch.zeros((T, N), dtype=torch.long, device=device)
        elif isinstance(action_space, gym.spaces.MultiDiscrete):
            self.actions = torch.zeros((T, N, len(action_space.nvec)), dtype=torch.long,
                                       device=device)
        else:
            self.actions = torch.zeros((T, N, *action_space.shape), device=device)
        self.logp = torch.zeros((T, N), device=device)
        self.values = torch.zeros((T, N), device=device)
        self.rewards = torch.zeros((T, N), device=device)
        self.terminated = torch.zeros((T, N), dtype=torch.bool, device=device)
        self.truncated = torch.zeros((T, N), dtype=torch.bool, device=device)
        self.valid = torch.zeros((T, N), dtype=torch.bool, device=device)
        self.start_state: State = ()
        self.num_steps, self.num_envs = T, N


class ActionAdapter:
    """Turns action tensors into what the env expects (clipped floats for Box)."""

    def __init__(self, space: gym.Space):
        self.box = isinstance(space, gym.spaces.Box)
        if self.box:
            self.low, self.high = space.low, space.high

    def __call__(self, action: torch.Tensor) -> np.ndarray:
        a = action.cpu().numpy()
        return np.clip(a, self.low, self.high) if self.box else a


def check_finite(name: str, array: np.ndarray, step: int) -> None:
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise NonFiniteError(f"non-finite {name} from the environment at env index {bad[0]}, "
                             f"rollout step {step}")


def collect_rollout(envs: VecEnv, model: ActorCritic, buf: RolloutBuffer, carry: Carry,
                    to_env: ActionAdapter, nan_guard: bool = True) -> list[Episode]:
    """Act for buf.num_steps steps from `carry`, filling `buf`; updates `carry` in place."""
    episodes: list[Episode] = []
    buf.start_state = carry.state
    state = carry.state
    float_obs = buf.obs.dtype != torch.uint8
    for t in range(buf.num_steps):
        buf.obs[t].copy_(carry.obs)
        buf.first[t] = carry.first
        buf.valid[t] = ~carry.reset_next
        action, logp, value, state = model.act(carry.obs, carry.first, state)
        buf.actions[t] = action
        buf.logp[t] = logp
        buf.values[t] = value
        obs, reward, terminated, truncated, finished = envs.step(to_env(action))
        if nan_guard:
            check_finite("reward", reward, t)
            if float_obs:
                check_finite("observation", obs, t)
        buf.rewards[t] = torch.from_numpy(reward)
        term = torch.from_numpy(terminated)
        trunc = torch.from_numpy(truncated)
        buf.terminated[t] = term
        buf.truncated[t] = trunc
        carry.first = carry.reset_next.clone()
        carry.reset_next = ~carry.reset_next & (term | trunc).to(carry.first.device)
        carry.obs.copy_(torch.from_numpy(obs))
        episodes.extend(finished)
    buf.obs[-1].copy_(carry.obs)
    buf.first[-1] = carry.first
    carry.state = state
    return episodes
