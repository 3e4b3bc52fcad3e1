"""Optimizers whose state lives in shared memory, for A3C workers stepping one global model.

PyTorch's Adam and RMSprop create their state lazily on the first `step()`, in the process
that calls it, so each A3C worker would get a private state. These subclasses create the
state eagerly, exactly as PyTorch's `_init_group` does (same keys, shapes and dtypes,
including the `step` count tensor), and move every state tensor into shared memory. The
update itself is PyTorch's own `step()`, untouched: it updates the shared tensors in place,
so every process sees one optimizer.

Pass the optimizer (together with the model it optimizes) to worker processes as arguments
of `Process`: one pickling keeps the identity between the model's parameters and the
optimizer's, and the shared tensors travel as shared memory. Without a lock, concurrent
steps race like Hogwild (the A3C paper's setting); `lock=` serializes whole steps.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.optim.optimizer import _get_scalar_dtype

from actorcritic.algorithms.optimizers import RMSpropTF


class _SharedStateMixin:
    """Eager shared state plus an optional inter-process lock around `step()`."""

    lock: Any = None

    def _state_keys(self, group: dict) -> list[str]:
        raise NotImplementedError

    def _fresh_state(self, p: torch.Tensor, group: dict) -> dict[str, torch.Tensor]:
        # `step` is a CPU float32 scalar tensor, as in PyTorch's own init (not capturable,
        # not fused: those are CUDA features); the rest starts at zero.
        state = {"step": torch.zeros((), dtype=_get_scalar_dtype())}
        for key in self._state_keys(group):
            state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _init_shared_state(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if len(state) == 0:
                    state.update(self._fresh_state(p, group))
        self.share_memory()

    def share_memory(self) -> _SharedStateMixin:
        """Move every state tensor to shared memory (again after `load_state_dict`)."""
        for state in self.state.values():
            for value in state.values():
                if torch.is_tensor(value):
                    value.share_memory_()
        return self

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)  # replaces the state tensors: share them again
        self.share_memory()

    @torch.no_grad()
    def step(self, closure=None):
        guard = self.lock if self.lock is not None else contextlib.nullcontext()
        with guard:
            return super().step(closure)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["lock"] = self.lock
        return state


class SharedAdam(_SharedStateMixin, torch.optim.Adam):
    """torch.optim.Adam with its state (step, exp_avg, exp_avg_sq) in shared memory."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, lock: Any = None,
                 fused: bool | None = None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, fused=fused)
        self.lock = lock
        self._init_shared_state()

    def _state_keys(self, group: dict) -> list[str]:
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])


class SharedRMSprop(_SharedStateMixin, torch.optim.RMSprop):
    """torch.optim.RMSprop with its state (step, square_avg, ...) in shared memory."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 lock: Any = None, foreach: bool | None = None):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered, foreach=foreach)
        self.lock = lock
        self._init_shared_state()

    def _state_keys(self, group: dict) -> list[str]:
        keys = ["square_avg"]
        if group["momentum"] > 0:
            keys.append("momentum_buffer")
        if group["centered"]:
            keys.append("grad_avg")
        return keys


class SharedRMSpropTF(_SharedStateMixin, RMSpropTF):
    """RMSpropTF with its state (step, square_avg starting at 1) in shared memory."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-10,
                 lock: Any = None):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps)
        self.lock = lock
        self._init_shared_state()

    def _fresh_state(self, p: torch.Tensor, group: dict) -> dict[str, torch.Tensor]:
        return RMSpropTF.initial_state(p)


def make_shared_optimizer(params, cfg, lock: Any = None):
    """The shared counterpart of `actorcritic.algorithms.update.make_optimizer`: same settings and
    the same kernels (Adam fused, RMSprop multi-tensor), so one step is the same arithmetic.
    PyTorch's CPU default is the loop over parameter tensors, one op each, a tenth of an A3C
    worker's time on the Nature CNN."""
    if cfg.optimizer == "adam":
        return SharedAdam(params, lr=cfg.lr, eps=cfg.optim_eps, lock=lock, fused=True)
    if cfg.optimizer == "rmsprop_tf":
        return SharedRMSpropTF(params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.optim_eps,
                               lock=lock)
    return SharedRMSprop(params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.optim_eps, lock=lock,
                         foreach=True)
