"""Double-buffered rollouts for A2C (`algo.overlap`): the next rollout is collected while
the update runs.

Synchronous A2C alternates: the network acts and the emulators step, then the network
learns while the emulators wait for its next actions. On a CPU with few cores neither half
fills the cores, so a fifth to a third of them idles (docs/BENCHMARKS.md). Here an acting
thread collects rollout k+1 while the training thread learns from rollout k.

Acting ahead means acting with the parameters from before the latest update. The lag is
one update, on a fixed schedule, and each gradient is still the exact on-policy gradient
of its rollout:

- rollout k is collected by one of two acting copies of the model, holding the parameters
  theta_(k-1) of one update before (rollouts 0 and 1 both use theta_0); its actions,
  log-probabilities and bootstrap value all come from theta_(k-1);
- its gradient is taken on that same copy, at theta_(k-1) (from the recorded acting
  passes, or recomputed), so it is the A2C gradient of the policy that acted;
- the optimizer applies it to the newest parameters: theta_(k+1) = theta_k - step(g_k),
  which is SGD with a gradient delay of one update (as each A3C worker's gradient is
  delayed, but always by exactly one).

Copy k % 2 acts for rollout k while the other copy's rollout is learned from; once its
gradient is taken, a copy receives the new parameters and acts again. Nothing depends on
thread timing: a run is the same for a seed whatever the machine's load.

Python threads share the GIL, but torch's kernels and the emulators (EnvPool, ale-py)
release it, which is where the time goes.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from actorcritic.algos.rollout import RolloutBuffer
from actorcritic.envs.vector import Episode


@dataclass
class Collected:
    """One rollout, ready to learn from: the copy that acted (at the parameters it acted
    with), its buffer and the episodes that finished during it."""

    index: int
    model: nn.Module
    buf: RolloutBuffer
    episodes: list[Episode]


class _Stopped(Exception):
    pass


class OverlappedRollouts:
    """The acting thread, its two model copies and two rollout buffers.

    `collect(model, buf)` fills `buf` with one rollout acted by `model` and returns the
    finished episodes; it runs on the acting thread only, so the env and the carry between
    rollouts belong to that thread. The training thread calls `next()` for each rollout in
    order, takes the gradient on `Collected.model`, moves it to the trained model with
    `take_gradients`, steps, and gives the copy back with `release`.
    """

    def __init__(self, model: nn.Module, buffers: tuple[RolloutBuffer, RolloutBuffer],
                 collect: Callable[[nn.Module, RolloutBuffer], list[Episode]]):
        self.model = model
        self.copies = [copy.deepcopy(model) for _ in buffers]
        self.buffers = buffers
        self.collect = collect
        self._free = [threading.Semaphore(1) for _ in buffers]  # a copy may act again
        self._ready: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._next_index = 0
        self._thread = threading.Thread(target=self._act, name="actorcritic-acting",
                                        daemon=True)
        self._thread.start()

    def _act(self) -> None:
        index = 0
        try:
            while True:
                slot = index % len(self.copies)
                self._free[slot].acquire()
                if self._stop.is_set():
                    raise _Stopped
                episodes = self.collect(self.copies[slot], self.buffers[slot])
                self._ready.put(Collected(index, self.copies[slot], self.buffers[slot],
                                          episodes))
                index += 1
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the training thread, raised there
            self._ready.put(exc)

    def next(self) -> Collected:
        """The next rollout in order; an error of the acting thread is raised here."""
        item = self._ready.get()
        if isinstance(item, BaseException):
            self._stop.set()
            raise item
        assert item.index == self._next_index, "rollouts are learned from in order"
        self._next_index += 1
        return item

    def take_gradients(self, collected: Collected) -> None:
        """The trained model's gradients become those just computed on the acting copy."""
        for param, acted in zip(self.model.parameters(), collected.model.parameters()):
            param.grad = acted.grad
            acted.grad = None

    @torch.no_grad()
    def release(self, collected: Collected) -> None:
        """Give the copy the trained model's newest parameters (and buffers: the observation
        statistics); it may act again."""
        for acted, param in zip(collected.model.parameters(), self.model.parameters()):
            acted.copy_(param)
        for acted, buffer in zip(collected.model.buffers(), self.model.buffers()):
            acted.copy_(buffer)
        self._free[collected.index % len(self.copies)].release()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the acting thread once its current rollout ends (its envs stay open)."""
        self._stop.set()
        for free in self._free:
            free.release()
        self._thread.join(timeout)
