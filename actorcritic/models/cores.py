"""Recurrent cores run over time-major sequences [T, N, F] with resets at episode starts.

`first[t, n]` is True where observation t of env n is the first of an episode; the state
is zeroed before that step. Running a sequence at once is exactly the same computation as
stepping one step at a time (T=1) with the same flags, which is what acting does.
"""

from __future__ import annotations

import torch
from torch import nn

State = tuple[torch.Tensor, ...]


class NoCore(nn.Module):
    def __init__(self, in_size: int):
        super().__init__()
        self.out_size = in_size

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        return ()

    def forward(self, x: torch.Tensor, first: torch.Tensor, state: State):
        return x, state


class RecurrentCore(nn.Module):
    """LSTM or GRU cell stepped over time; state is (h, c) for LSTM and (h,) for GRU."""

    def __init__(self, kind: str, in_size: int, size: int):
        super().__init__()
        self.kind = kind
        self.cell = nn.LSTMCell(in_size, size) if kind == "lstm" else nn.GRUCell(in_size, size)
        for name, p in self.cell.named_parameters():
            if "weight" in name:
                nn.init.orthogonal_(p)
            else:
                nn.init.zeros_(p)
        self.out_size = size

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        n = 2 if self.kind == "lstm" else 1
        return tuple(torch.zeros(batch, self.out_size, device=device) for _ in range(n))

    def forward(self, x: torch.Tensor, first: torch.Tensor, state: State):
        keep = (~first).to(x.dtype).unsqueeze(-1)  # [T, N, 1]
        outputs = []
        for t in range(x.shape[0]):
            state = tuple(s * keep[t] for s in state)
            if self.kind == "lstm":
                h, c = self.cell(x[t], state)
                state = (h, c)
            else:
                h = self.cell(x[t], state[0])
                state = (h,)
            outputs.append(h)
        return torch.stack(outputs), state


def make_core(kind: str, in_size: int, size: int) -> nn.Module:
    return NoCore(in_size) if kind == "none" else RecurrentCore(kind, in_size, size)
