"""The one training loop, and the one failure path every algorithm shares.

    while not stopping:
        set the learning rate
        collected = sampler.next(log_now)      # a rollout, or a batch of trajectories
        count its steps, record its episodes
        stats = learner.update(collected)      # loss -> gradients -> clip, guard, step
        sampler.publish(version, model)        # workers elsewhere get the new parameters
        log, evaluate, checkpoint (RunSession.end_of_update)
    final checkpoint

A sampler yields `Collected` items and owns the envs (or the workers that step them); a
learner turns one into an optimizer step and owns the optimizer. A checkpoint is the
model's tensors plus the learner's state plus the sampler's state plus the torch RNG.
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


@dataclass
class Collected:
    """What a sampler hands the learner: `data` is the learner's to read (an A2C rollout
    buffer with the model that acted, or IMPALA trajectories)."""

    steps: int
    data: Any
    episodes: list[tuple[int, list[Episode]]] = field(default_factory=list)  # (worker, eps)
    stats: dict[str, float] = field(default_factory=dict)  # logged with the update's


class Sampler(Protocol):
    def next(self, log_now: bool) -> Collected: ...

    def publish(self, version: int, model: nn.Module) -> None: ...

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None: ...

    def close(self) -> None: ...


class Learner(Protocol):
    def set_lr(self, lr: float) -> None: ...

    def update(self, collected: Collected, update: int, log_now: bool
               ) -> tuple[dict, list[tuple[int, list[Episode]]]]:
        """One optimizer step: (stats, episodes the update brought back from helpers)."""

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None: ...


def checkpoint_writer(session, model: nn.Module, sampler: Sampler,
                      learner: Learner) -> Callable[[str], None]:
    """`session.checkpoint(name)`: model + learner state + sampler state + torch RNG."""

    def write(name: str) -> None:
        tensors = model_tensors(model)
        meta: dict = {}
        learner.add_state(tensors, meta)
        sampler.add_state(tensors, meta)
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
        if getattr(session, "checkpoint", None) is None:  # nothing was learned yet
            raise
        if before_final is not None:
            before_final()
        session.checkpoint("final")
        if isinstance(exc, EnvError):  # a user error: the CLI prints it as it is
            raise EnvError(f"{exc} (the last good checkpoint was written)") from None
        raise


def run_loop(session, model: nn.Module, sampler: Sampler, learner: Learner) -> None:
    """Train until a stop condition; the sampler is closed whatever happens."""
    from actorcritic.algos.update import lr_at

    cfg = session.cfg
    try:
        session.checkpoint = checkpoint_writer(session, model, sampler, learner)
        with keeping_last_good(session):
            while not session.should_stop():
                lr = lr_at(cfg.algo, session.env_steps, cfg.run.total_steps,
                           session.window.count)
                learner.set_lr(lr)
                log_now = (session.updates + 1) % cfg.run.log_every == 0  # after add_steps
                collected = sampler.next(log_now)
                session.add_steps(collected.steps)
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
            session.checkpoint("final")
    finally:
        sampler.close()
