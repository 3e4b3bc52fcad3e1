"""RMSprop as TensorFlow computes it, the optimizer the A2C/A3C papers' Atari settings were
tuned with (OpenAI baselines, the original stable-baselines).

torch.optim.RMSprop differs from it in two ways that matter at those settings:

- epsilon: torch divides by `sqrt(v) + eps`, TensorFlow by `sqrt(v + eps)`. With the
  papers' eps = 1e-5 TensorFlow's floor on the denominator is sqrt(1e-5) = 3.2e-3, torch's
  1e-5, so torch takes up to 300x larger steps on parameters whose gradients are small.
- the square average starts at 1 in TensorFlow, at 0 in torch, so torch's first steps have
  size ~lr / sqrt(1 - alpha) = 10 lr per parameter, whatever the gradient's scale.

`algo.optimizer: rmsprop_tf` selects this one. The step is one multi-tensor (`_foreach`)
operation per formula term, like torch's own `foreach=True` RMSprop. The state has torch's
layout (`step`, `square_avg` per parameter), so checkpoints store it as they store
torch's optimizers.
"""

from __future__ import annotations

import torch
from torch.optim.optimizer import _get_scalar_dtype


class RMSpropTF(torch.optim.Optimizer):
    """v <- alpha v + (1 - alpha) g^2 (v starts at 1);  p <- p - lr g / sqrt(v + eps)."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-10):
        if lr <= 0 or eps <= 0 or not 0 <= alpha <= 1:
            raise ValueError(f"invalid RMSpropTF settings: lr={lr}, alpha={alpha}, eps={eps}")
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    @staticmethod
    def initial_state(p: torch.Tensor) -> dict[str, torch.Tensor]:
        """The state a parameter starts with (also used by the shared A3C variant)."""
        return {"step": torch.zeros((), dtype=_get_scalar_dtype()),
                "square_avg": torch.ones_like(p, memory_format=torch.preserve_format)}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError("RMSpropTF does not support sparse gradients")
                if not self.state[p]:
                    self.state[p].update(self.initial_state(p))
            grads = [p.grad for p in params]
            states = [self.state[p] for p in params]
            square_avgs = [s["square_avg"] for s in states]
            torch._foreach_add_([s["step"] for s in states], 1.0)
            alpha = group["alpha"]
            torch._foreach_mul_(square_avgs, alpha)
            torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
            denom = torch._foreach_add(square_avgs, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])
        return loss
