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
    """LSTM or GRU over time; state is (h, c) for LSTM and (h,) for GRU, each [N, size].

    The weights live in an LSTMCell/GRUCell (the same layout as a one-layer nn.LSTM/GRU).
    Acting calls the cell kernel once; training splits the sequence only at time steps
    where some env starts an episode and runs each reset-free segment through PyTorch's
    fused multi-step kernel, which is several times cheaper than a Python loop of cells.
    """

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

    def _weights(self) -> list[torch.Tensor]:
        c = self.cell
        return [c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh]

    def forward(self, x: torch.Tensor, first: torch.Tensor, state: State):
        T = x.shape[0]
        if T == 1:
            keep = (~first[0]).unsqueeze(-1).to(x.dtype)
            state = tuple(s * keep for s in state)
            w = self._weights()
            if self.kind == "lstm":
                h, c = torch.lstm_cell(x[0], state, *w)
                return h.unsqueeze(0), (h, c)
            h = torch.gru_cell(x[0], state[0], *w)
            return h.unsqueeze(0), (h,)
        starts = torch.nonzero(first.any(dim=1)).flatten().tolist()
        bounds = sorted({0, T, *starts})
        outputs = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            keep = (~first[a]).unsqueeze(-1).to(x.dtype)
            hx = tuple((s * keep).unsqueeze(0) for s in state)  # [1, N, size]
            if self.kind == "lstm":
                out, h, c = torch.lstm(x[a:b], hx, self._weights(), True, 1, 0.0,
                                       self.training, False, False)
                state = (h[0], c[0])
            else:
                out, h = torch.gru(x[a:b], hx[0], self._weights(), True, 1, 0.0,
                                   self.training, False, False)
                state = (h[0],)
            outputs.append(out)
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0], state


def make_core(kind: str, in_size: int, size: int) -> nn.Module:
    return NoCore(in_size) if kind == "none" else RecurrentCore(kind, in_size, size)
