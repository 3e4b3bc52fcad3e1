"""The one training loop, and the one failure path every algorithm shares.

    while not stopping:
        set the learning rate
        collected = sampler.next(log_now)      # a rollout, trajectories, or an A3C update
        count its steps, record its episodes
        stats = learner.update(collected)      # loss -> gradients -> clip, guard, step
        sampler.publish(version, model)        # workers elsewhere get the new parameters
        log, evaluate, checkpoint (RunSession.end_of_update)
    sampler.stop()                             # workers that step the model themselves
    final checkpoint

A sampler yields `Collected` items and owns the envs (or the workers that step them); a
learner turns one into an optimizer step and owns the optimizer. A checkpoint is the
model's tensors plus the learner's state plus the sampler's state plus the torch RNG.
In A3C the workers have already applied each update when the sampler yields it, so its
learner only holds the shared optimizer (algos/a3c.py); the loop is the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from actorcritic.envs.vector import Episode
from actorcritic.errors import EnvError, NonFiniteError, WorkerFailure
from actorcritic.run.checkpoint import model_tensors
from actorcritic.schedules import lr_at


@dataclass
class Collected:
    """What a sampler hands the learner: `data` is the learner's to read (an A2C rollout
    buffer with the model that acted, or IMPALA trajectories)."""

    steps: int
    data: Any
    episodes: list[tuple[int, list[Episode]]] = field(default_factory=list)  # (worker, eps)
    stats: dict[str, float] = field(default_factory=dict)  # logged with the update's
    updates: int = 1  # 0: nothing arrived before the run was told to stop


class Sampler(Protocol):
    def next(self, log_now: bool) -> Collected: ...

    def publish(self, version: int, model: nn.Module) -> None: ...

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None: ...

    def stop(self) -> None:
        """Stop producing before the final checkpoint: workers that update the model on
        their own (A3C) must be stopped first. Most samplers have nothing to do."""

    def close(self) -> None: ...


class Learner(Protocol):
    def set_lr(self, lr: float) -> None: ...

    def update(self, collected: Collected, update: int, log_now: bool
               ) -> tuple[dict, list[tuple[int, list[Episode]]]]:
        """One optimizer step: (stats, episodes the update brought back from helpers)."""

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None: ...

    def holding_still(self) -> contextlib.AbstractContextManager:
        """Held while a checkpoint copies the tensors: A3C's shared lock, so that no worker
        steps the model or the optimizer state half-way through the copy."""


def checkpoint_writer(session, model: nn.Module, sampler: Sampler, learner: Learner
                      ) -> Callable[..., None]:
    """`session.checkpoint(name)`: model + learner state + sampler state + torch RNG.
    `model_snapshot` (tensors named `model.*`) replaces the model's current tensors: A3C's
    best checkpoint holds the parameters its evaluator played, not the newer ones."""

    def write(name: str, model_snapshot: dict[str, torch.Tensor] | None = None) -> None:
        meta: dict = {}
        with learner.holding_still():
            tensors = dict(model_snapshot) if model_snapshot is not None \
                else model_tensors(model)
            learner.add_state(tensors, meta)
            sampler.add_state(tensors, meta)
            tensors = {k: v.detach().clone() for k, v in tensors.items()}
        tensors["extra.rng_torch"] = torch.get_rng_state()
        meta["algo"] = session.cfg.algo.name
        session.save(name, tensors, meta)

    return write


@contextlib.contextmanager
def keeping_last_good(session, before_final: Callable[[], None] | None = None
                      ) -> Iterator[None]:
    """Every way a started run can fail (an env that crashes or hangs, a NaN, a worker
    that keeps dying) writes the final checkpoint with the last good parameters first,
    then raises one clear error. `before_final` runs first (stop workers, sync counters)."""
    try:
        yield
    except (NonFiniteError, WorkerFailure, EnvError) as exc:
        if session.checkpoint is None:  # nothing was learned yet
            raise
        if before_final is not None:
            before_final()
        session.checkpoint("final")
        if isinstance(exc, EnvError):  # a user error: the CLI prints it as it is
            raise EnvError(f"{exc} (the last good checkpoint was written)") from None
        raise


def run_loop(session, model: nn.Module, sampler: Sampler, learner: Learner) -> None:
    """Train until a stop condition; the sampler is closed whatever happens."""
    cfg = session.cfg
    try:
        session.checkpoint = checkpoint_writer(session, model, sampler, learner)
        with keeping_last_good(session, before_final=sampler.stop):
            while not session.should_stop():
                lr = lr_at(cfg.algo, session.env_steps, cfg.run.total_steps,
                           session.window.count)
                learner.set_lr(lr)
                log_now = (session.updates + 1) % cfg.run.log_every == 0  # after add_steps
                collected = sampler.next(log_now)
                if not collected.updates:
                    continue  # told to stop while waiting: should_stop() says why
                session.add_steps(collected.steps, collected.updates)
                for worker, episodes in collected.episodes:
                    session.record_episodes(episodes, worker=worker)
                stats, late = learner.update(collected, session.updates, log_now)
                for worker, episodes in late:
                    session.record_episodes(episodes, worker=worker)
                sampler.publish(session.updates, model)
                if log_now:
                    stats["charts/lr"] = lr
                    stats.update(collected.stats)
                    session.log(stats)
                session.end_of_update(model, logged=log_now)
            sampler.stop()
            session.checkpoint("final")
    finally:
        sampler.close()
