"""The Nature CNN's update work on the CPU: memory layout and how the backward is batched.

A2C on Pong acts 5 times on 16 envs, then trains on the 80 frames. Rows, per update:
- acting: 5 forward passes of 16 frames without autograd;
- backward through 5 kept graphs: 5 forward passes of 16 with autograd, then one backward
  (the driver before replay);
- forward + backward of 80: one recomputed batch (what recomputing, or SB3, does);
each with NCHW and with channels-last (NHWC) weights and inputs. Replay (the driver now)
costs acting plus the backward of the batch of 80, without its forward.

    cd benchmarks && ../.venv/bin/python cnn_layouts.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as atari_throughput.py

import time  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from actorcritic.models.encoders import NatureCNN  # noqa: E402

T, N = 5, 16


class Model(nn.Module):
    def __init__(self, channels_last: bool):
        super().__init__()
        self.encoder = NatureCNN((4, 84, 84))
        if not channels_last:  # undo the encoder's own channels-last layout
            self.encoder.conv.to(memory_format=torch.contiguous_format)
        self.head = nn.Linear(512, 7)
        self.channels_last = channels_last

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return self.head(self.encoder(frames))
        x = self.encoder.conv(frames.float() / 255.0)  # NCHW all the way
        return self.head(self.encoder.fc(x))


def ms_per_call(fn, seconds: float = 5.0) -> float:
    for _ in range(3):
        fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls * 1000


def time_layout(channels_last: bool, frames: torch.Tensor) -> list[tuple[str, str, float]]:
    torch.manual_seed(0)
    model = Model(channels_last)

    def acting():
        with torch.no_grad():
            for t in range(T):
                model(frames[t])

    def kept_graphs():
        loss = sum(model(frames[t]).sum() for t in range(T))
        model.zero_grad(set_to_none=True)
        loss.backward()

    def batch_of_80():
        out = model(frames.reshape(T * N, 4, 84, 84))
        model.zero_grad(set_to_none=True)
        out.sum().backward()

    layout = "NHWC" if channels_last else "NCHW"
    return [(layout, "acting: 5 x 16, no autograd", ms_per_call(acting)),
            (layout, "backward through 5 kept graphs of 16", ms_per_call(kept_graphs)),
            (layout, "forward + backward of one batch of 80", ms_per_call(batch_of_80))]


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    frames = torch.randint(0, 256, (T, N, 4, 84, 84), dtype=torch.uint8)
    rows = time_layout(False, frames) + time_layout(True, frames)
    print(f"\nNature CNN update work, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; ms per update")
    for layout, name, ms in rows:
        print(f"{layout}  {name:42s} {ms:7.1f}")


if __name__ == "__main__":
    main()
