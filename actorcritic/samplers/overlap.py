"""The overlapped sampler of A2C and PPO (`algo.overlap`): the next rollout is collected
while the update runs.

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

import torch
from torch import nn

from actorcritic.envs.actions import ActionAdapter
from actorcritic.run.loop import Collected
from actorcritic.samplers.rollout import (
    Carry,
    RewardTransform,
    Rollout,
    RolloutBuffer,
    collect_rollout,
)


class _Stopped(Exception):
    pass


class OverlappedRollouts:
    """The acting thread, its two model copies and two rollout buffers.

    `collect(model, buf)` fills `buf` with one rollout acted by `model`; it runs on the
    acting thread only, so the env and the carry between rollouts belong to that thread.
    The training thread calls `next()` for each rollout in order, takes the gradient on
    `Rollout.model` (the copy that acted), moves it to the trained model with
    `take_gradients`, steps, and gives the copy back with `release`.
    """

    def __init__(self, model: nn.Module, buffers: tuple[RolloutBuffer, RolloutBuffer],
                 collect: Callable[[nn.Module, RolloutBuffer], Rollout], first_version: int = 0):
        self.model = model
        self.copies = [copy.deepcopy(model) for _ in buffers]
        self.buffers = buffers
        self.collect = collect
        self.first_version = first_version  # the updates made before rollout 0 acted
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
                rollout = self.collect(self.copies[slot], self.buffers[slot])
                rollout.index = index
                # rollouts 0 and 1 act with the first parameters, rollout k with k-1 updates
                rollout.version = self.first_version + max(index - 1, 0)
                self._ready.put(rollout)
                index += 1
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the training thread, raised there
            self._ready.put(exc)

    def next(self) -> Rollout:
        """The next rollout in order; an error of the acting thread is raised here."""
        item = self._ready.get()
        if isinstance(item, BaseException):
            self._stop.set()
            raise item
        assert item.index == self._next_index, "rollouts are learned from in order"
        self._next_index += 1
        return item

    def take_gradients(self, rollout: Rollout) -> None:
        """The trained model's gradients become those just computed on the acting copy."""
        for param, acted in zip(self.model.parameters(), rollout.model.parameters()):
            param.grad = acted.grad
            acted.grad = None

    @torch.no_grad()
    def release(self, rollout: Rollout) -> None:
        """Give the copy the trained model's newest parameters (and buffers: the observation
        statistics); it may act again."""
        for acted, param in zip(rollout.model.parameters(), self.model.parameters()):
            acted.copy_(param)
        for acted, buffer in zip(rollout.model.buffers(), self.model.buffers()):
            acted.copy_(buffer)
        self._free[rollout.index % len(self.copies)].release()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the acting thread once its current rollout ends (its envs stay open)."""
        self._stop.set()
        for free in self._free:
            free.release()
        self._thread.join(timeout)


class OverlapSampler:
    """Rollout k+1 is acted on another thread, by a copy holding the parameters from
    before update k, while update k runs. Checkpoints keep no env state. Its learner
    takes each rollout's gradient on the copy that acted and hands the copy back
    (`self.overlap`: TorchLearner, PPOLearner)."""

    def __init__(self, envs, model: nn.Module, carry: Carry, buf: RolloutBuffer, cfg,
                 keep_graph: bool, rewards: RewardTransform, acting_rng: torch.Generator,
                 version: int = 0):
        to_env = ActionAdapter(envs.single_action_space)

        def collect(acting_model: nn.Module, rollout: RolloutBuffer) -> Rollout:
            return collect_rollout(envs, acting_model, rollout, carry, to_env,
                                   cfg.run.nan_guard, keep_graph=keep_graph, rewards=rewards,
                                   generator=acting_rng)

        second = RolloutBuffer(cfg.algo.num_steps, envs.num_envs,
                               envs.single_observation_space, envs.single_action_space,
                               buf.device)
        self.envs, self.rewards = envs, rewards
        self.overlap = OverlappedRollouts(model, (buf, second), collect, version)
        self.steps = cfg.algo.num_steps * cfg.env.num_envs

    def next(self, log_now: bool) -> Collected:
        rollout = self.overlap.next()
        return Collected(self.steps, rollout, [(0, rollout.episodes)])

    def publish(self, version: int, model: nn.Module) -> None:
        """The learner hands each acting copy the new parameters (`release`)."""

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """The envs are stepped on the acting thread: no env state in checkpoints, only
        the reward statistics (a checkpoint is written between rollouts' hand-overs, so
        they can be one rollout ahead of the update)."""
        tensors.update(self.rewards.state_tensors())

    def stop(self) -> None:
        """The acting thread only acts: it stops in close(), after the final checkpoint."""

    def close(self) -> None:
        try:
            self.overlap.close()
        finally:
            self.envs.close()
