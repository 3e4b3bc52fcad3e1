"""Shared optimizers: eager state in shared memory, PyTorch's own update math, real processes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from actorcritic.algorithms.optimizers import RMSpropTF
from actorcritic.algorithms.shared_optim import SharedAdam, SharedRMSprop, SharedRMSpropTF
from actorcritic.run.workers import process_context

VARIANTS = {
    "adam": (SharedAdam, torch.optim.Adam, {"lr": 1e-2, "eps": 1e-5}),
    "adam_amsgrad_wd": (SharedAdam, torch.optim.Adam,
                        {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.1}),
    "rmsprop": (SharedRMSprop, torch.optim.RMSprop, {"lr": 1e-2, "alpha": 0.99, "eps": 1e-5}),
    "rmsprop_centered_momentum": (SharedRMSprop, torch.optim.RMSprop,
                                  {"lr": 1e-2, "centered": True, "momentum": 0.9}),
    "rmsprop_tf": (SharedRMSpropTF, RMSpropTF, {"lr": 1e-2, "alpha": 0.99, "eps": 1e-5}),
    "adam_fused": (SharedAdam, torch.optim.Adam, {"lr": 1e-2, "eps": 1e-5, "fused": True}),
    "rmsprop_foreach": (SharedRMSprop, torch.optim.RMSprop,
                        {"lr": 1e-2, "alpha": 0.99, "eps": 1e-5, "foreach": True}),
}


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))


def _loss(net: nn.Module, k: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + k)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 3, generator=g)
    return ((net(x) - y) ** 2).mean()


@pytest.mark.parametrize("name", VARIANTS)
def test_state_is_eager_and_shared(name):
    shared_cls, _, kwargs = VARIANTS[name]
    net = _net()
    opt = shared_cls(net.parameters(), **kwargs)
    params = list(net.parameters())
    for p in params:  # state exists before any step, every tensor in shared memory
        state = opt.state[p]
        assert "step" in state and float(state["step"]) == 0.0
        assert len(state) >= 2
        for key, value in state.items():
            assert value.is_shared(), f"{name}: state {key} is not in shared memory"
    if kwargs.get("amsgrad"):
        assert "max_exp_avg_sq" in opt.state[params[0]]
    if kwargs.get("centered"):
        assert {"grad_avg", "momentum_buffer"} <= set(opt.state[params[0]])
    if shared_cls is SharedRMSpropTF:  # TensorFlow's square average starts at 1
        assert torch.equal(opt.state[params[0]]["square_avg"], torch.ones_like(params[0]))


def _step_both(a, opt_a, b, opt_b, steps: int) -> None:
    """The same losses, step by step, through two nets and their optimizers."""
    for k in range(steps):
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad(set_to_none=True)
            _loss(net, k).backward()
            opt.step()


@pytest.mark.parametrize("name", VARIANTS)
def test_one_process_equals_plain_torch_bit_for_bit(name):
    shared_cls, torch_cls, kwargs = VARIANTS[name]
    a, b = _net(), _net()
    opt_a, opt_b = shared_cls(a.parameters(), **kwargs), torch_cls(b.parameters(), **kwargs)
    _step_both(a, opt_a, b, opt_b, steps=6)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert set(sa) == set(sb)
        for key in sb:
            assert torch.equal(sa[key], sb[key]), f"{name}: state {key} differs"
            assert sa[key].dtype == sb[key].dtype
    assert float(opt_a.state[next(a.parameters())]["step"]) == 6.0


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "rmsprop_tf"])
def test_make_shared_optimizer_steps_as_make_optimizer_bit_for_bit(optimizer):
    """A3C's shared optimizer is A2C's, kernel included (fused Adam, multi-tensor RMSprop)."""
    from actorcritic.algorithms.shared_optim import make_shared_optimizer
    from actorcritic.algorithms.update import make_optimizer
    from actorcritic.config import AlgoConfig

    cfg = AlgoConfig(optimizer=optimizer, lr=1e-2, optim_eps=1e-5)
    a, b = _net(), _net()
    opt_a, opt_b = make_shared_optimizer(a.parameters(), cfg), make_optimizer(b.parameters(), cfg)
    assert opt_a.defaults.get("fused") == opt_b.defaults.get("fused")
    assert opt_a.defaults.get("foreach") == opt_b.defaults.get("foreach")
    _step_both(a, opt_a, b, opt_b, steps=6)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert all(v.is_shared() for v in opt_a.state[pa].values() if torch.is_tensor(v))


def test_load_state_dict_keeps_state_shared():
    a = _net()
    opt = SharedAdam(a.parameters(), lr=1e-2)
    _loss(a, 0).backward()
    opt.step()
    saved = opt.state_dict()
    b = _net()
    opt_b = SharedAdam(b.parameters(), lr=1e-2)
    opt_b.load_state_dict(saved)
    for p in b.parameters():
        assert float(opt_b.state[p]["step"]) == 1.0
        assert all(v.is_shared() for v in opt_b.state[p].values())


def _child_steps(jobs, k: int, seed: int) -> None:
    torch.set_num_threads(1)
    for i in range(k):
        for net, opt in jobs:
            for p in net.parameters():  # a process-local gradient on the shared parameter
                p.grad = None
            _loss(net, seed * 100 + i).backward()
            opt.step()


def test_step_count_is_global_across_processes():
    """N processes x k steps each: every parameter's shared step counter reads N*k, and the
    parameters (shared memory too) moved in the parent. Adam and RMSprop, one lock each."""
    n, k = 3, 4
    ctx = process_context()  # as the A3C workers start
    jobs = []
    for cls in (SharedAdam, SharedRMSprop):
        net = _net()
        net.share_memory()
        jobs.append((net, cls(net.parameters(), lr=1e-2, lock=ctx.Lock())))
    before = [[p.detach().clone() for p in net.parameters()] for net, _ in jobs]
    procs = [ctx.Process(target=_child_steps, args=(jobs, k, i)) for i in range(n)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(300)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.exitcode is None:
                p.kill()
                p.join()
    for (net, opt), old_params in zip(jobs, before, strict=True):
        key = "exp_avg_sq" if isinstance(opt, SharedAdam) else "square_avg"
        for p, old in zip(net.parameters(), old_params, strict=True):
            assert float(opt.state[p]["step"]) == n * k
            assert not torch.equal(p.detach(), old)
            assert opt.state[p][key].abs().sum() > 0
