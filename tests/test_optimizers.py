"""RMSpropTF against a plain NumPy reference of TensorFlow's RMSprop, and through a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from actorcritic.algorithms.optimizers import RMSpropTF
from actorcritic.algorithms.update import make_optimizer
from actorcritic.config import AlgoConfig
from actorcritic.run.checkpoint import (
    load_checkpoint,
    load_optimizer,
    optimizer_tensors,
    save_checkpoint,
)


def reference(params: list[np.ndarray], grads: list[list[np.ndarray]], lr: float, alpha: float,
              eps: float) -> list[np.ndarray]:
    """TensorFlow's RMSProp (no momentum, not centered) in float64, one parameter at a time."""
    params = [p.astype(np.float64).copy() for p in params]
    ms = [np.ones_like(p) for p in params]
    for step in grads:
        for i, g in enumerate(step):
            ms[i] = alpha * ms[i] + (1 - alpha) * g.astype(np.float64) ** 2
            params[i] -= lr * g / np.sqrt(ms[i] + eps)
    return params


def test_steps_equal_tensorflows_formula():
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=7).astype(np.float32)]
    # gradient scales from 1e-4 to 10: eps inside the square root matters for the small ones
    grads = [[(rng.normal(size=p.shape) * scale).astype(np.float32) for p in start]
             for scale in (1e-4, 1e-2, 1.0, 10.0, 1e-3, 0.1)]
    params = [torch.tensor(p, requires_grad=True) for p in start]
    opt = RMSpropTF(params, lr=7e-4, alpha=0.99, eps=1e-5)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = torch.tensor(g)
        opt.step()
    for got, want in zip(params, reference(start, grads, 7e-4, 0.99, 1e-5)):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=0, atol=1e-6)
    assert float(opt.state[params[0]]["step"]) == len(grads)


def test_differs_from_torch_rmsprop_where_the_issue_says():
    """Same settings, first step on a tiny gradient: torch's step is ~10 lr (its square
    average starts at 0, eps outside the root), TensorFlow's ~lr * g."""
    g = torch.full((4,), 1e-4)
    steps = {}
    for name, cls in (("tf", RMSpropTF), ("torch", torch.optim.RMSprop)):
        p = torch.zeros(4, requires_grad=True)
        opt = cls([p], lr=1e-3, alpha=0.99, eps=1e-5)
        p.grad = g.clone()
        opt.step()
        steps[name] = -float(p.detach()[0])
    assert steps["tf"] == pytest.approx(1e-3 * 1e-4 / np.sqrt(0.99 + 1e-5 + 0.01 * 1e-8), rel=1e-4)
    assert steps["torch"] > 5e-3 and steps["torch"] / steps["tf"] > 1e4


def test_config_selects_it_and_its_state_survives_a_checkpoint(tmp_path):
    cfg = AlgoConfig(optimizer="rmsprop_tf", lr=1e-2, rms_alpha=0.9, optim_eps=1e-5)
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    opt = make_optimizer(net.parameters(), cfg)
    assert isinstance(opt, RMSpropTF)
    x = torch.randn(6, 3)

    def step(n, o):
        o.zero_grad()
        (n(x) ** 2).mean().backward()
        o.step()

    for _ in range(3):
        step(net, opt)
    tensors, meta = optimizer_tensors(opt)
    assert set(tensors) == {"optim.0.square_avg", "optim.1.square_avg", "optim.0.step",
                            "optim.1.step"}

    save_checkpoint(tmp_path / "opt.ckpt", tensors, {"optimizer": meta})
    twin = nn.Linear(3, 2)
    twin.load_state_dict(net.state_dict())
    twin_opt = make_optimizer(twin.parameters(), cfg)
    load_optimizer(twin_opt, load_checkpoint(tmp_path / "opt.ckpt"))
    step(net, opt)
    step(twin, twin_opt)
    for a, b in zip(net.parameters(), twin.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("optimizer,kernel", [("rmsprop", "foreach"), ("adam", "fused")])
def test_a_checkpoint_keeps_the_state_and_not_the_kernel(tmp_path, optimizer, kernel):
    """A checkpoint of PyTorch's per-tensor loop (A3C's shared optimizers until a114087)
    resumes into the multi-tensor or fused kernel the optimizer was built with, and steps as
    if it had always been that kernel."""
    cfg = AlgoConfig(optimizer=optimizer, lr=1e-2, optim_eps=1e-5)
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    looped = make_optimizer(net.parameters(), cfg)
    for group in looped.param_groups:
        group[kernel] = None  # the CPU default: the loop over tensors
    x = torch.randn(6, 3)
    looped.zero_grad()
    (net(x) ** 2).mean().backward()
    looped.step()
    tensors, meta = optimizer_tensors(looped)
    assert meta["param_groups"][0][kernel] is None
    save_checkpoint(tmp_path / "opt.ckpt", tensors, {"optimizer": meta})
    resumed, twin = nn.Linear(3, 2), nn.Linear(3, 2)
    resumed.load_state_dict(net.state_dict())
    twin.load_state_dict(net.state_dict())
    resumed_opt = make_optimizer(resumed.parameters(), cfg)
    load_optimizer(resumed_opt, load_checkpoint(tmp_path / "opt.ckpt"))
    assert resumed_opt.param_groups[0][kernel] is True
    twin_opt = make_optimizer(twin.parameters(), cfg)
    twin_opt.load_state_dict(looped.state_dict())
    for group in twin_opt.param_groups:
        group[kernel] = True
    for n, o in ((resumed, resumed_opt), (twin, twin_opt)):
        o.zero_grad()
        (n(x) ** 2).mean().backward()
        o.step()
    for a, b in zip(resumed.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="invalid RMSpropTF"):
        RMSpropTF([torch.zeros(1, requires_grad=True)], lr=-1.0)
