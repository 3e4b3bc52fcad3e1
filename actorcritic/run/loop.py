"""The one training loop, and the one failure path every algorithm shares.

    while not stopping:
        set the learning rate
        collected = sampler.next(log_now)      # a rollout, trajectories, or an A3C update
        count its steps, record its episodes   # episodes come from samplers only
        stats = learner.update(collected)      # loss -> gradients -> clip, guard, step
        sampler.publish(version, model)        # workers elsewhere get the new parameters
        log, evaluate, checkpoint (RunSession.end_of_update)
    sampler.stop()                             # workers that step the model themselves
    final checkpoint

A sampler yields `Collected` items (samplers/experience.py: a `Rollout`, trajectories, a
worker's gradient) and owns the envs (or the workers that step them); a learner turns one
into an optimizer step, returns its statistics and owns the optimizer. A checkpoint is the
model's tensors plus the learner's state plus the sampler's state plus the torch RNG.
In A3C the workers have already applied each update when the sampler yields it, so its
learner only holds the shared optimizer (algorithms/a3c.py); the loop is the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

import torch
from torch import nn

from actorcritic.errors import EnvError, NonFiniteError, WorkerFailure
from actorcritic.run.checkpoint import model_tensors
from actorcritic.samplers.experience import Collected
from actorcritic.schedules import lr_at

# An update's statistics by TensorBoard tag ("losses/total", "diag/grad_norm", ...).
Stats = dict[str, torch.Tensor | float]


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

    def update(self, collected: Collected, update: int, log_now: bool) -> Stats:
        """One optimizer step (or, A3C, none: the workers made it); its statistics."""

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
        meta: dict = {"checkpoint": name}  # the sampler may keep what resume needs out of best
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


def run_loop(session, model: nn.Module, sampler: Sampler, learner: Learner,
             evaluate: Callable[[nn.Module], None] | None = None) -> None:
    """Train until a stop condition; the sampler is closed whatever happens. `evaluate`
    starts a due evaluation elsewhere (A3C's evaluator process); by default the session
    plays the current parameters itself."""
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
                stats = learner.update(collected, session.updates, log_now)
                sampler.publish(session.updates, model)
                if log_now:
                    stats["charts/lr"] = lr
                    stats.update(collected.stats)
                    session.log(stats)
                session.end_of_update(model, logged=log_now, evaluate=evaluate)
            sampler.stop()
            session.checkpoint("final")
    finally:
        sampler.close()
