"""What a sampler hands a learner: the typed seam of the training loop (run/loop.py).

    Collected.data     made by                                      read by
    Rollout            SyncSampler, OverlapSampler (samplers/)      A2C and PPO learners,
                                                                    each A3C worker's learner
    list[Trajectory]   ActorsSampler (samplers/actors.py)          IMPALA's learner
    WorkerGradient     ActorsSampler on Ray (a3c_ps)               the parameter server
    None               A3CSampler: the workers applied the update   A3C's main process
    Replay             ReplaySampler (samplers/replay.py)           SAC's and TD3's learners

Trajectories and gradients cross process and machine boundaries (pipes, Ray), so they
hold NumPy arrays and plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actorcritic.envs.vector import Episode
from actorcritic.samplers.replay_buffer import ReplayBuffer
from actorcritic.samplers.rollout import Rollout

# The time-major fields a trajectory carries: obs and first [T+1, N, ...], the rest [T, N].
TRAJECTORY_FIELDS = ("obs", "first", "actions", "logp", "rewards", "terminated", "truncated",
                     "valid")


@dataclass
class Trajectory:
    """One actor's rollout for IMPALA's learner, acted with the parameters of `version`."""

    index: int                      # the actor that played it
    version: int                    # the learner's update count of the parameters it used
    episodes: list[Episode]
    steps: int                      # T * N
    arrays: dict[str, np.ndarray]   # TRAJECTORY_FIELDS
    start_state: list[np.ndarray]   # the recurrent state before row 0 (empty: feedforward)


@dataclass
class WorkerGradient:
    """One actor's A3C gradient for the parameter server (a3c_ps): its rollout's loss
    backpropagated on the actor's copy at the parameters of `version`."""

    index: int
    version: int
    episodes: list[Episode]
    steps: int
    loss: float
    grads: np.ndarray               # flat, in model.parameters() order
    stats: dict[str, float]


@dataclass
class Replay:
    """What the replay sampler (samplers/replay.py) hands the learner: the buffer, and how
    many gradient steps to take from it now (0 before `algo.learning_starts`)."""

    buffer: ReplayBuffer
    gradient_steps: int


@dataclass
class Collected:
    """One item from a sampler: the experience of one update, its env steps, the episodes
    that finished in it by worker, and statistics logged with the update's."""

    steps: int
    data: Rollout | list[Trajectory] | WorkerGradient | Replay | None
    episodes: list[tuple[int, list[Episode]]] = field(default_factory=list)  # (worker, eps)
    stats: dict[str, float] = field(default_factory=dict)
    updates: int = 1  # 0: nothing arrived before the run was told to stop

    def rollout(self) -> Rollout:
        return self._expect(Rollout)

    def trajectories(self) -> list[Trajectory]:
        if not isinstance(self.data, list):
            raise TypeError(f"expected trajectories, the sampler sent {type(self.data)}")
        return self.data

    def gradient(self) -> WorkerGradient:
        return self._expect(WorkerGradient)

    def replay(self) -> Replay:
        return self._expect(Replay)

    def _expect(self, kind: type):
        if not isinstance(self.data, kind):
            raise TypeError(f"expected {kind.__name__}, the sampler sent "
                            f"{type(self.data).__name__}")
        return self.data
