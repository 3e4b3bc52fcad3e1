"""ActorCritic: encoder -> optional recurrent core -> policy and value heads.

With `shared_trunk` the actor and critic share one encoder and core; without it they are
two separate networks (as in the Breakout A3C notebook). With `normalize_obs` vector
observations pass through running statistics first (normalize.py). Every call is time-major:
obs [T, N, ...], first [T, N] -> policy params [T, N, P], values [T, N], new state.
Acting is the same call with T=1, so training recomputes exactly what acting saw.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from actorcritic.config import Config, ModelConfig
from actorcritic.errors import ConfigError
from actorcritic.importpath import is_import_path
from actorcritic.models.cores import State, make_core
from actorcritic.models.encoders import (
    MLP,
    NatureCNN,
    SmallCNN,
    custom_encoder,
    orthogonal_,
    prepared_frames,
)
from actorcritic.models.heads import make_head
from actorcritic.models.normalize import ObsNormalizer
from actorcritic.models.precision import EncoderPrecision, encoder_precision, native_bfloat16


def make_encoder(obs_space: gym.Space, cfg: ModelConfig) -> nn.Module:
    shape = tuple(obs_space.shape)
    kind = cfg.encoder
    if is_import_path(kind):  # the user's own: module:Class
        return custom_encoder(obs_space, kind, cfg.encoder_kwargs)
    if kind == "auto":
        kind = "nature_cnn" if len(shape) == 3 else "mlp"
    if kind == "mlp":
        return MLP(int(np.prod(shape)), cfg.hidden_sizes, cfg.activation)
    if len(shape) != 3:
        raise ValueError(f"model.encoder={kind} needs image observations [C, H, W], got {shape}")
    if kind == "nature_cnn":
        return NatureCNN(shape)
    return SmallCNN(shape, cfg.cnn_channels, cfg.cnn_dense)


def make_obs_normalizer(obs_space: gym.Space, cfg: ModelConfig) -> ObsNormalizer | None:
    if not cfg.normalize_obs:
        return None
    if obs_space.dtype == np.uint8 or len(obs_space.shape) == 3:
        raise ValueError("model.normalize_obs is for vector observations; image frames are "
                         "scaled by 1/255 in the encoder")
    return ObsNormalizer(tuple(obs_space.shape), cfg.obs_clip)


class Trunk(nn.Module):
    """Encoder plus core: [T, N, ...obs] -> features [T, N, F].

    With `model.precision: bfloat16` (or `auto` on a CPU with native bfloat16) the encoder
    runs under autocast and its features are cast back to float32, so the core, the heads
    and the losses never see bfloat16.
    """

    def __init__(self, obs_space: gym.Space, cfg: ModelConfig,
                 mlp_products_elsewhere: bool = False):
        """mlp_products_elsewhere: the model's learner runs `model.precision=bfloat16` as
        bfloat16 matrix products for the whole run (SAC, TD3), so an MLP encoder here
        accepts the setting and adds no autocast of its own."""
        super().__init__()
        self.encoder = make_encoder(obs_space, cfg)
        self.core = make_core(cfg.core, self.encoder.out_size, cfg.core_size)
        self.out_size = self.core.out_size
        self.precision_setting = cfg.precision
        self.mlp = isinstance(self.encoder, MLP)
        if cfg.precision == "bfloat16" and self.mlp and not mlp_products_elsewhere:
            raise ConfigError("model.precision=bfloat16 is for CNN encoders (image "
                              "observations) and for SAC's and TD3's networks; an on-policy "
                              "MLP encoder runs in float32")
        self.choose_precision("cpu")  # built on the CPU; training.py moves it on

    def choose_precision(self, device_type: str) -> EncoderPrecision:
        """The encoder's precision on this device (models/precision.py)."""
        if self.mlp and self.precision_setting == "bfloat16":  # SAC, TD3: the run says it
            self.bfloat16 = False
            return EncoderPrecision("float32", "an MLP: the run's matrix products", False)
        cnn = isinstance(self.encoder, (NatureCNN, SmallCNN))  # auto: the built-in CNNs
        choice = encoder_precision(self.precision_setting, cnn, device_type, native_bfloat16())
        self.bfloat16 = choice.dtype == "bfloat16"
        return choice

    def forward(self, obs: torch.Tensor, first: torch.Tensor, state: State):
        t, n = obs.shape[:2]
        flat = obs.reshape(t * n, *obs.shape[2:])
        if self.bfloat16:  # entering even a disabled autocast costs ~5 us per call
            with torch.autocast(obs.device.type, dtype=torch.bfloat16):
                x = self.encoder(flat).float()
        else:
            x = self.encoder(flat)
        return self.core(x.reshape(t, n, -1), first, state)


def place_encoders(model: nn.Module, device_type: str) -> EncoderPrecision | None:
    """Set every encoder of `model`, now on `device_type`, to its precision there; that of
    the first, or None for a model without a trunk."""
    chosen = None
    for module in model.modules():
        if isinstance(module, Trunk):
            choice = module.choose_precision(device_type)
            chosen = chosen or choice
    return chosen


class ActorCritic(nn.Module):
    def __init__(self, obs_space: gym.Space, action_space: gym.Space, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.obs_norm = make_obs_normalizer(obs_space, cfg)
        self.actor_trunk = Trunk(obs_space, cfg)
        self.critic_trunk = None if cfg.shared_trunk else Trunk(obs_space, cfg)
        self.policy = make_head(self.actor_trunk.out_size, action_space)
        value_in = (self.critic_trunk or self.actor_trunk).out_size
        self.value = orthogonal_(nn.Linear(value_in, 1), gain=1.0)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        state = self.actor_trunk.core.initial_state(batch, device)
        if self.critic_trunk is not None:
            state = state + self.critic_trunk.core.initial_state(batch, device)
        return state

    def forward(self, obs: torch.Tensor, first: torch.Tensor, state: State):
        n_actor = len(state) if self.critic_trunk is None else len(state) // 2
        if self.obs_norm is not None:
            obs = self.obs_norm(obs)
        features, actor_state = self.actor_trunk(obs, first, state[:n_actor])
        if self.critic_trunk is None:
            value_features, new_state = features, actor_state
        else:
            value_features, critic_state = self.critic_trunk(obs, first, state[n_actor:])
            new_state = actor_state + critic_state
        return self.policy(features), self.value(value_features).squeeze(-1), new_state

    def learner_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """A rollout's observations as a learner that reads them several times holds them:
        uint8 frames for a CNN converted once (`prepared_frames`, the same values the
        encoder would compute on each pass), anything else as it is (a user's encoder
        gets the frames as the env gives them)."""
        if obs.dtype == torch.uint8 and type(self.actor_trunk.encoder) in (NatureCNN, SmallCNN):
            return prepared_frames(obs)
        return obs

    @torch.inference_mode()
    def act(self, obs: torch.Tensor, first: torch.Tensor, state: State, greedy: bool = False,
            generator: torch.Generator | None = None):
        """One step for a batch [N, ...]: returns actions [N], log-probs [N], values [N], state.
        Actions are sampled from `generator` (default: torch's global random stream)."""
        params, value, state = self(obs.unsqueeze(0), first.unsqueeze(0), state)
        action, logp = self.policy.sample_with_logp(params[0], greedy, generator)
        return action, logp, value[0], state


def build_actor_critic(cfg: Config, obs_space: gym.Space, action_space: gym.Space
                       ) -> ActorCritic:
    return ActorCritic(obs_space, action_space, cfg.model)


def build_model(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> nn.Module:
    """The configured algorithm's model for these spaces (the registry names its builder:
    ActorCritic, or SAC's and TD3's actor and twin critics); an impossible combination is a
    ConfigError."""
    from actorcritic import registry

    try:
        return registry.model_builder(cfg)(cfg, obs_space, action_space)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def set_threads(cfg: Config, obs_space: gym.Space) -> None:
    """Torch intra-op threads and NumPy's BLAS threads: 1 for small MLPs (dispatch-bound),
    all cores for CNNs.

    The BLAS limit matters for the NumPy update (run.numpy_update): its 256 x 64 matmuls
    run 2.5x slower when OpenBLAS spreads them over cores that other work keeps busy. The
    trade, measured (docs/BENCHMARKS.md): CartPole's NumPy path at 64 envs is 1.4x faster
    beside another busy process, and on an idle 2-core machine between 8% slower and level.
    Set before the model is built: the orthogonal init's QR depends on the thread count.
    """
    from threadpoolctl import threadpool_limits

    threads = cfg.run.torch_threads
    if threads == 0:
        image = len(obs_space.shape) == 3 and cfg.model.encoder != "mlp"
        threads = (os.cpu_count() or 1) if image else 1
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")
