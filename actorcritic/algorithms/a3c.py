"""A3C: worker processes pushing gradients into one global model in shared memory.

The workers, their sampler and the evaluator process are in samplers/a3c_workers.py; the
update every worker makes is in algorithms/hogwild.py. The main process never trains. It
runs the one training loop (run/loop.py) over an `A3CSampler`, whose every item is an
update a worker has already applied, and a learner that only holds the shared optimizer
for checkpoints.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from actorcritic.algorithms.shared_optim import make_shared_optimizer
from actorcritic.algorithms.update import OptimizerState, accelerators_line, reuses_acting_graph
from actorcritic.run.loop import Stats, run_loop
from actorcritic.run.workers import process_context
from actorcritic.samplers.a3c_workers import A3CSampler, ChildPool
from actorcritic.samplers.experience import Collected


class SharedOptimizerLearner(OptimizerState):
    """A3C's learner in the main process: the workers have applied every update already
    (HogwildLearner), each at the learning rate it computes from the global counters. This
    one holds the shared optimizer for checkpoints, copied under its lock when it has one."""

    def __init__(self, optimizer: torch.optim.Optimizer, lock):
        self.optimizer, self.lock = optimizer, lock

    def set_lr(self, lr: float) -> None:
        """Each worker sets its own: this process's copy of the optimizer never steps."""

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        return {}

    def holding_still(self) -> contextlib.AbstractContextManager:
        return self.lock if self.lock is not None else contextlib.nullcontext()


def run_a3c(session, model: nn.Module, resume=None) -> None:
    """Asynchronous advantage actor-critic: `algo.num_workers` workers, one global model."""
    from actorcritic.run.checkpoint import load_optimizer

    cfg = session.cfg  # session.device is the CPU (the registry's cpu_only)
    model.to("cpu")
    model.share_memory()
    lock = process_context().Lock() if cfg.algo.shared_lock else None
    optimizer = make_shared_optimizer(model.parameters(), cfg.algo, lock)
    if resume is not None:
        load_optimizer(optimizer, resume)  # shared again by SharedAdam/SharedRMSprop
    W = cfg.algo.num_workers
    counters = torch.zeros(W + 1, 3, dtype=torch.int64)
    counters[W] = torch.tensor([session.env_steps, session.updates, session.window.count])
    counters.share_memory_()
    acting = "torch, recorded for replay" if reuses_acting_graph(model, cfg.algo) else "torch"
    kernel = {"adam": "fused", "rmsprop": "multi-tensor"}.get(cfg.algo.optimizer, "per tensor")
    session.progress.message(f"a3c on workers: {W} workers, acting {acting}, update torch on "
                             f"each worker's copy, shared {cfg.algo.optimizer} ({kernel})"
                             + (" under a lock" if lock is not None else "")
                             + f"; {accelerators_line(acting, 'torch')}")
    pool = ChildPool(session, model, optimizer, counters)
    try:
        sampler = A3CSampler(session, pool, counters)
    except BaseException:
        pool.shutdown()
        raise
    run_loop(session, model, sampler, SharedOptimizerLearner(optimizer, lock),
             evaluate=sampler.request_evaluation)
