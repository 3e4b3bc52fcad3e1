"""Observation encoders: [B, ...obs] -> [B, features]. Images stay uint8 until here.

Each declares its feature size as `out_size`; the core and heads attach after it. The
user's own encoder (`model.encoder: module:Class`, or train(encoder=Class)) follows the
same contract: `Class(observation_space, **model.encoder_kwargs)`, an nn.Module with
`out_size`, taking observations as the env gives them (uint8 frames, float32 vectors).
"""

from __future__ import annotations

import math
from numbers import Integral

import torch
from torch import nn
from torch.nn import functional as F

from actorcritic.errors import ConfigError
from actorcritic.importpath import resolve


def orthogonal_(layer: nn.Module, gain: float = math.sqrt(2)) -> nn.Module:
    """Orthogonal weights, zero bias (the init of the A2C/PPO papers)."""
    nn.init.orthogonal_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def image_input(images: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] images as the CNNs take them: float32 in NHWC memory order (channels
    last), uint8 frames divided by 255.

    The CNNs keep their convolution weights and inputs channels-last: oneDNN's CPU kernels
    run a Nature CNN's backward faster that way than on NCHW (benchmarks/cnn_layouts.py).
    Values, shapes and checkpoints do not change. The frames are converted to float before
    they are reordered, and divided in place (the result is a fresh tensor).
    """
    x = images.float().contiguous(memory_format=torch.channels_last)
    return x.div_(255.0) if images.dtype == torch.uint8 else x


def prepared_frames(images: torch.Tensor) -> torch.Tensor:
    """uint8 frames [..., C, H, W] converted once, as `image_input` would convert them:
    float32 divided by 255, each frame channels-last in memory.

    For a learner that passes over the same rollout several times (PPO's epochs): indexing
    the result keeps the layout, so `image_input` finds its input ready and copies nothing.
    The values are those `image_input` computes, bit for bit.
    """
    *lead, c, h, w = images.shape
    out = torch.empty(*lead, h, w, c, dtype=torch.float32, device=images.device)
    out.copy_(images.movedim(-3, -1))
    return out.div_(255.0).movedim(-1, -3)


class MLP(nn.Module):
    """Fully connected encoder for vector observations."""

    def __init__(self, in_size: int, hidden_sizes: list[int], activation: str = "tanh"):
        super().__init__()
        act = nn.Tanh if activation == "tanh" else nn.ReLU
        layers: list[nn.Module] = []
        size = in_size
        for h in hidden_sizes:
            layers += [orthogonal_(nn.Linear(size, int(h))), act()]
            size = int(h)
        self.net = nn.Sequential(*layers)
        self._act = torch.tanh if activation == "tanh" else torch.relu
        self.out_size = size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # Direct F.linear calls: module-call overhead is most of a small MLP's time.
        x = obs.flatten(1).float()
        layers = self.net
        for i in range(0, len(layers), 2):
            x = self._act(F.linear(x, layers[i].weight, layers[i].bias))
        return x


class NatureCNN(nn.Module):
    """The DQN Nature network: 3 convolutions and a 512-unit layer, input [B, C, 84, 84]."""

    def __init__(self, obs_shape: tuple[int, ...]):
        super().__init__()
        c = obs_shape[0]
        self.conv = nn.Sequential(
            orthogonal_(nn.Conv2d(c, 32, 8, stride=4)), nn.ReLU(),
            orthogonal_(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            orthogonal_(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten())
        self.conv.to(memory_format=torch.channels_last)
        with torch.no_grad():
            n = self.conv(torch.zeros(1, *obs_shape)).shape[1]
        self.fc = nn.Sequential(orthogonal_(nn.Linear(n, 512)), nn.ReLU())
        self.out_size = 512

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(image_input(obs)))


class SmallCNN(nn.Module):
    """Three stride-2 3x3 convolutions and one dense layer (the KungFuMaster notebook's
    network for 42x42 frames; also used for the football minimap)."""

    def __init__(self, obs_shape: tuple[int, ...], channels: int = 32, dense: int = 128):
        super().__init__()
        c = obs_shape[0]
        self.conv = nn.Sequential(
            orthogonal_(nn.Conv2d(c, channels, 3, stride=2)), nn.ReLU(),
            orthogonal_(nn.Conv2d(channels, channels, 3, stride=2)), nn.ReLU(),
            orthogonal_(nn.Conv2d(channels, channels, 3, stride=2)), nn.ReLU(),
            nn.Flatten())
        self.conv.to(memory_format=torch.channels_last)
        with torch.no_grad():
            n = self.conv(torch.zeros(1, *obs_shape)).shape[1]
        self.fc = nn.Sequential(orthogonal_(nn.Linear(n, dense)), nn.ReLU())
        self.out_size = dense

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(image_input(obs)))


def custom_encoder(obs_space, path: str, kwargs: dict) -> nn.Module:
    """The user's encoder: the nn.Module class that `path` (module:Class) names, built as
    Class(obs_space, **kwargs) and checked on a batch of two zero observations."""
    try:
        cls = resolve(path)
    except ImportError as exc:
        raise ConfigError(f"model.encoder '{path}' cannot be imported: {exc}; pass the class "
                          f"itself (encoder=...)") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"model.encoder '{path}' names a {type(cls).__name__}, not an "
                          f"nn.Module class")
    try:
        encoder = cls(obs_space, **kwargs)
    except Exception as exc:  # the user's code: one line, the traceback kept as the cause
        raise ConfigError(f"model.encoder '{path}' failed when built as {cls.__name__}("
                          f"observation_space, **{kwargs}): {type(exc).__name__}: {exc}") from exc
    size = getattr(encoder, "out_size", None)
    if not isinstance(size, Integral) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"model.encoder '{path}': {cls.__name__} must set self.out_size to "
                          f"the number of features its forward returns (got {size!r})")
    _check_features(encoder, obs_space, path, int(size))
    return encoder


def _check_features(encoder: nn.Module, obs_space, path: str, size: int) -> None:
    """Its forward on two zero observations (in eval mode, so batch norm and dropout keep
    their state) returns [2, out_size]."""
    dtype = torch.uint8 if str(obs_space.dtype) == "uint8" else torch.float32
    training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            out = encoder(torch.zeros((2, *obs_space.shape), dtype=dtype))
    except Exception as exc:
        raise ConfigError(f"model.encoder '{path}' failed on a batch of observations "
                          f"[2, {', '.join(map(str, obs_space.shape))}] ({dtype}): "
                          f"{type(exc).__name__}: {exc}") from exc
    finally:
        encoder.train(training)
    if not torch.is_tensor(out) or tuple(out.shape) != (2, size) or out.dtype != torch.float32:
        got = f"{out.dtype} {tuple(out.shape)}" if torch.is_tensor(out) else type(out).__name__
        raise ConfigError(f"model.encoder '{path}' returned {got} for a batch of 2 "
                          f"observations; with out_size {size} it must return float32 "
                          f"[batch, {size}]")
