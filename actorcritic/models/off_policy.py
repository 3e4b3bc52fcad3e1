"""The networks of SAC and TD3: an actor for Box actions and twin Q critics.

    actor   obs -> trunk (model.encoder: an MLP, or the user's encoder) ->
            SquashedGaussianHead (SAC) or DeterministicHead (TD3)
    critics (obs, action) -> TwinQ: two MLPs of model.hidden_sizes and model.activation

Both actors produce actions in [-1, 1] and scale them to the Box (`action_scale`,
`action_bias`), so what `act` returns is what the env takes, and the critics see actions
in the env's units (as CleanRL's SAC and TD3 do). The target networks are not part of the
model: the learner keeps them (algorithms/sac.py, td3.py), so a shipped agent holds the
actor and critics only.

The model answers the calls every agent answers (`act`, `initial_state`; evaluation,
video, `actorcritic.load`), so what plays an on-policy agent plays these too.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from actorcritic.config import Config
from actorcritic.errors import ConfigError
from actorcritic.models.actor_critic import Trunk

# SAC's log std is squashed into this range (CleanRL's bounds), smoothly, by a tanh.
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def linear_init_(weight: torch.Tensor, bias: torch.Tensor, fan_in: int) -> None:
    """torch.nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and
    bias: what Stable-Baselines3's and CleanRL's SAC and TD3 networks start from."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)
    nn.init.uniform_(bias, -bound, bound)


def default_linear(in_size: int, out_size: int) -> nn.Linear:
    layer = nn.Linear(in_size, out_size)
    linear_init_(layer.weight, layer.bias, in_size)
    return layer


def squashed_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
                      ) -> torch.Tensor:
    """log pi(tanh(u)) of a diagonal Gaussian sample `u` pushed through tanh, summed over
    action dimensions: log N(u; mean, std) - sum log(1 - tanh(u)^2), with the correction in
    its stable form 2 (log 2 - u - softplus(-2u)). It is the density of the action in
    [-1, 1], as Stable-Baselines3 computes it (the Box scale is left out, so that the
    target entropy -dim(A) means the same for every Box)."""
    z = (u - mean) / log_std.exp()
    gauss = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    correction = 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))
    return gauss - correction.sum(-1)


class SquashedGaussianHead(nn.Module):
    """SAC's policy: features -> mean and state-dependent log std; a = tanh(mean + std e)."""

    def __init__(self, in_size: int, action_dim: int):
        super().__init__()
        self.mean = default_linear(in_size, action_dim)
        self.log_std = default_linear(in_size, action_dim)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_std = torch.tanh(self.log_std(features))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1.0)
        return self.mean(features), log_std

    def sample(self, features: torch.Tensor, greedy: bool = False,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """An action in [-1, 1] and its log-probability (reparameterized: differentiable)."""
        mean, log_std = self(features)
        if greedy:
            u = mean
        else:
            noise = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device,
                                generator=generator)
            u = mean + log_std.exp() * noise
        return torch.tanh(u), squashed_log_prob(u, mean, log_std)


class DeterministicHead(nn.Module):
    """TD3's policy: features -> tanh(linear), an action in [-1, 1]; acting adds Gaussian
    exploration noise of std `noise_std` (in those units), clipped back to [-1, 1]."""

    def __init__(self, in_size: int, action_dim: int, noise_std: float):
        super().__init__()
        self.mean = default_linear(in_size, action_dim)
        self.noise_std = noise_std

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mean(features))

    def sample(self, features: torch.Tensor, greedy: bool = False,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The action (with exploration noise unless greedy) and a zero log-probability
        (a deterministic policy has no density)."""
        action = self(features)
        if not greedy:
            noise = torch.randn(action.shape, dtype=action.dtype, device=action.device,
                                generator=generator)
            action = (action + self.noise_std * noise).clamp(-1.0, 1.0)
        return action, torch.zeros(action.shape[:-1], device=action.device)


class QNetwork(nn.Module):
    """[obs, action] -> hidden layers -> Q value, each layer an nn.Linear with its default
    init (as Stable-Baselines3's and CleanRL's critics); `model.activation` between them."""

    def __init__(self, in_size: int, hidden_sizes: list[int], activation: str = "relu"):
        super().__init__()
        sizes = [in_size, *map(int, hidden_sizes), 1]
        self.layers = nn.ModuleList(default_linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self.activation = torch.relu if activation == "relu" else torch.tanh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Direct F.linear calls: module-call overhead is a large share of a small MLP's time.
        *hidden, last = self.layers
        for layer in hidden:
            x = self.activation(F.linear(x, layer.weight, layer.bias))
        return F.linear(x, last.weight, last.bias).squeeze(-1)


class TwinQ(nn.Module):
    """Two Q networks of the same shape; `forward` gives both values stacked [2, B].

    (One batched network, each layer a `baddbmm` over a leading axis of 2, measured slower
    on the CPU than two plain stacks: 5.8 against 4.6-5.1 ms for forward and backward at
    batch 256, 256-256 hidden units, one thread.)"""

    def __init__(self, in_size: int, hidden_sizes: list[int], activation: str = "relu"):
        super().__init__()
        self.q1 = QNetwork(in_size, hidden_sizes, activation)
        self.q2 = QNetwork(in_size, hidden_sizes, activation)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q values [2, B] of observations [B, ...] and actions [B, D]."""
        x = torch.cat([obs.flatten(1).float(), action], -1)
        return torch.stack([self.q1(x), self.q2(x)])

    def first(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The first network's Q values [B] alone (TD3's actor loss reads only them)."""
        return self.q1(torch.cat([obs.flatten(1).float(), action], -1))


class OffPolicyActorCritic(nn.Module):
    """SAC's or TD3's actor and twin critics (see the module docstring)."""

    def __init__(self, obs_space: gym.Space, action_space: gym.spaces.Box, cfg: Config):
        super().__init__()
        self.cfg = cfg.model
        self.obs_norm = None
        self.actor_trunk = Trunk(obs_space, cfg.model, mlp_products_elsewhere=True)
        self.critic_trunk = None  # the critics are the TwinQ below, not a trunk
        dim = int(np.prod(action_space.shape))
        if cfg.algo.name == "sac":
            self.policy: nn.Module = SquashedGaussianHead(self.actor_trunk.out_size, dim)
        else:
            self.policy = DeterministicHead(self.actor_trunk.out_size, dim,
                                            cfg.algo.exploration_noise)
        self.critics = TwinQ(int(np.prod(obs_space.shape)) + dim, cfg.model.hidden_sizes,
                             cfg.model.activation)
        low = torch.as_tensor(action_space.low, dtype=torch.float32).flatten()
        high = torch.as_tensor(action_space.high, dtype=torch.float32).flatten()
        self.register_buffer("action_scale", (high - low) / 2.0)
        self.register_buffer("action_bias", (high + low) / 2.0)

    @property
    def stochastic(self) -> bool:
        return isinstance(self.policy, SquashedGaussianHead)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> tuple:
        return ()

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Actor features [B, F] of observations [B, ...] (the trunk has no recurrent core:
        config.py refuses one for SAC and TD3)."""
        return self.actor_trunk.encoder(obs)

    def to_env_units(self, unit_action: torch.Tensor) -> torch.Tensor:
        return unit_action * self.action_scale + self.action_bias

    def to_unit(self, env_action: torch.Tensor) -> torch.Tensor:
        return (env_action - self.action_bias) / self.action_scale

    def sample_action(self, obs: torch.Tensor, greedy: bool = False,
                      generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(action in the env's units, log-probability) for observations [B, ...];
        differentiable through the actor (SAC's actor loss backpropagates through it)."""
        unit, logp = self.policy.sample(self.features(obs), greedy, generator)
        return self.to_env_units(unit), logp

    def greedy_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.sample_action(obs, greedy=True)[0]

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The deterministic action [B, D] and the lower of the twin critics' values of it
        [B]: what the exported graph computes."""
        action = self.greedy_action(obs)
        return action, self.critics(obs, action).min(0).values

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, first: torch.Tensor, state: tuple, greedy: bool = False,
            generator: torch.Generator | None = None):
        """One step for a batch [N, ...]: (actions [N, D], log-probs [N], None, ()).
        Off-policy acting needs no value estimate, so none is computed."""
        action, logp = self.sample_action(obs, greedy, generator)
        return action, logp, None, ()


def build_off_policy_model(cfg: Config, obs_space: gym.Space, action_space: gym.Space
                           ) -> OffPolicyActorCritic:
    check_off_policy_spaces(cfg, obs_space, action_space)
    return OffPolicyActorCritic(obs_space, action_space, cfg)


def check_off_policy_spaces(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> None:
    """SAC and TD3 act on a bounded Box with vector observations: anything else is one
    ConfigError that says so."""
    name = cfg.algo.name
    if not isinstance(action_space, gym.spaces.Box):
        raise ConfigError(f"algo.name={name} is for continuous (Box) actions; {cfg.env.id} has "
                          f"{type(action_space).__name__} actions: use a2c, ppo, a3c or impala")
    if not (np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
        raise ConfigError(f"algo.name={name} squashes actions into the Box's bounds; "
                          f"{cfg.env.id}'s action space is unbounded")
    if len(obs_space.shape) != 1:
        raise ConfigError(f"algo.name={name} takes vector observations (its critics are "
                          f"MLPs); {cfg.env.id} gives observations of shape {obs_space.shape}")
