"""Observation encoders: [B, ...obs] -> [B, features]. Images stay uint8 until here."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


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
