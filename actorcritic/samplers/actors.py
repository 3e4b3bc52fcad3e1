"""Actor workers elsewhere, the sampler of IMPALA (local processes or Ray actors) and of
a3c_ps (Ray actors): each plays its own small vector of envs with a copy of the policy that
may be some updates old, and sends what it played (a `Trajectory`) or the gradient of it
(a `WorkerGradient`); the learner publishes its newest parameters after every update.

- `ActorWorker`: one rollout worker (its own envs and model copy). Local actor processes
  run it in a loop (`LocalActors`); Ray actors (distributed/ray_backend.py) wrap it.
- `ActorsSampler`: what the training loop sees of any such source: a batch per update.

Parameters are published as one flat float32 vector with a version number (= learner
updates); what an actor sends carries the version that acted, so the policy lag is
`updates at learning - version`, logged as diag/policy_lag.
"""

from __future__ import annotations

import queue as queue_mod
import time
from typing import Protocol

import numpy as np
import torch
from torch import nn

from actorcritic.algorithms.update import rollout_loss
from actorcritic.config import Config, config_from_dict
from actorcritic.models.precision import flush_denormals
from actorcritic.run.workers import (
    ErrorReport,
    WorkerPool,
    child_setup,
    process_context,
    raise_report,
    reap_process,
    start_process,
)
from actorcritic.samplers.experience import (
    TRAJECTORY_FIELDS,
    Collected,
    Trajectory,
    WorkerGradient,
)
from actorcritic.samplers.rollout import Carry, Rollout, RolloutBuffer, collect_rollout

# ---------------------------------------------------------------- parameters as one vector


def flat_params(model: nn.Module) -> np.ndarray:
    """All parameters as one float32 vector in their logical (NCHW) element order, whatever
    their memory layout (CNN weights are channels-last); the model has no buffers to
    publish."""
    with torch.no_grad():
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()]
                         ).float().cpu().numpy()


def load_flat(model: nn.Module, flat: np.ndarray) -> None:
    """Copy a `flat_params` vector into the model's parameters in place, so every parameter
    keeps its memory layout (and its optimizer/shared-memory identity)."""
    source = torch.tensor(flat, dtype=torch.float32)  # a copy: Ray's arrays are read-only
    params = list(model.parameters())
    expected = sum(p.numel() for p in params)
    if source.numel() != expected:
        raise ValueError(f"parameter vector has {source.numel()} values, the model {expected}")
    offset = 0
    with torch.no_grad():
        for p in params:
            p.copy_(source[offset:offset + p.numel()].view(p.shape))
            offset += p.numel()


# ---------------------------------------------------------------- the rollout worker

class ActorWorker:
    """A rollout worker: plays `algo.num_steps` steps on its own `env.num_envs` envs.

    `rollout()` returns a `Trajectory` (IMPALA); `gradients()` returns the A3C gradient of
    `rollout_loss` on the worker's copy, a `WorkerGradient` (a3c_ps on Ray). Both hold
    NumPy arrays and Episode records, so they cross process and machine boundaries cheaply.
    """

    def __init__(self, cfg_dict: dict, index: int, seed: int):
        flush_denormals(cfg_dict["run"]["flush_denormals"])  # a Ray actor's process too
        torch.set_num_threads(1)
        from actorcritic.algorithms.reward_scaling import ConstantScale
        from actorcritic.envs import make_vector_env
        from actorcritic.envs.actions import ActionAdapter
        from actorcritic.models.actor_critic import build_model

        self.cfg = cfg = config_from_dict(cfg_dict, cfg_dict.get("preset", ""))
        self.index = index
        torch.manual_seed(seed)
        self.envs = make_vector_env(cfg.env, seed=seed, mode="train")
        obs_space = self.envs.single_observation_space
        act_space = self.envs.single_action_space
        self.model = build_model(cfg, obs_space, act_space)
        self.device = torch.device("cpu")
        self.buf = RolloutBuffer(cfg.algo.num_steps, self.envs.num_envs, obs_space, act_space,
                                 self.device)
        self.carry = Carry.start(self.envs.reset(seed=seed), self.model, self.device)
        self.to_env = ActionAdapter(act_space)
        self.rewards = ConstantScale(cfg.algo.reward_scale)
        self.version = -1

    def load(self, version: int, flat: np.ndarray) -> None:
        if version != self.version:
            load_flat(self.model, flat)
            self.version = version

    def _collect(self) -> Rollout:
        return collect_rollout(self.envs, self.model, self.buf, self.carry, self.to_env,
                               self.cfg.run.nan_guard, rewards=self.rewards)

    def rollout(self) -> Trajectory:
        episodes = self._collect().episodes
        b = self.buf
        return Trajectory(self.index, self.version, episodes, b.num_steps * b.num_envs,
                          {name: getattr(b, name).numpy().copy() for name in TRAJECTORY_FIELDS},
                          [s.numpy().copy() for s in b.start_state])

    def gradients(self) -> WorkerGradient:
        episodes = self._collect().episodes
        loss, stats = rollout_loss(self.model, self.buf, self.cfg.algo)
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                           for p in self.model.parameters()])
        return WorkerGradient(self.index, self.version, episodes,
                              self.buf.num_steps * self.buf.num_envs, float(loss.detach()),
                              grads.numpy().copy(), {k: float(v) for k, v in stats.items()})

    def close(self) -> None:
        self.envs.close()


# ---------------------------------------------------------------- the sampler

class ExperienceSource(Protocol):
    """Where the learner's experience comes from (local processes or Ray actors)."""

    restarts: int

    def start(self, version: int, flat: np.ndarray) -> None: ...

    def next(self) -> Trajectory | WorkerGradient: ...

    def publish(self, version: int, flat: np.ndarray) -> None: ...

    def close(self) -> None: ...


class ActorsSampler:
    """Experience from actor workers elsewhere (local actor processes or Ray actors): a
    batch of `batch_size` trajectories per update (IMPALA), or one worker's gradient
    (a3c_ps); the newest parameters are published after each update."""

    def __init__(self, source: ExperienceSource, model: nn.Module, version: int,
                 batch_size: int, backend: str):
        self.source, self.model, self.version = source, model, version
        self.batch_size, self.backend = batch_size, backend
        self.started = False

    def next(self, log_now: bool) -> Collected:
        if not self.started:  # inside the loop's failure path
            self.source.start(self.version, flat_params(self.model))
            self.started = True
        items = [self.source.next() for _ in range(self.batch_size)]
        lag = float(np.mean([self.version - it.version for it in items]))
        data: list[Trajectory] | WorkerGradient = [it for it in items
                                                   if isinstance(it, Trajectory)]
        if len(data) < len(items):  # gradients come one per update
            data = items[0]
        return Collected(sum(it.steps for it in items), data,
                         [(it.index, it.episodes) for it in items],
                         {"diag/policy_lag": lag,
                          "diag/worker_restarts": float(self.source.restarts)})

    def publish(self, version: int, model: nn.Module) -> None:
        self.version = version
        self.source.publish(version, flat_params(model))

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """The workers' envs are elsewhere: checkpoints keep no env state."""
        meta["backend"] = self.backend

    def stop(self) -> None:
        """Actors only act; the central learner alone steps the model."""

    def close(self) -> None:
        self.source.close()


# ---------------------------------------------------------------- local actor processes

def _actor_main(cfg_dict: dict, index: int, seed: int, out, params, version, lock, stop,
                heartbeat) -> None:
    """Body of a local actor process: load the newest parameters, play, send, repeat.
    `heartbeat[index]` gets `time.monotonic()` (one clock for every process of a machine)."""
    worker = None
    try:
        child_setup(f"impala-actor-{index}", None, cfg_dict["run"]["flush_denormals"])
        worker = ActorWorker(cfg_dict, index, seed)
        view = np.frombuffer(params, dtype=np.float32)
        while not stop.is_set():
            heartbeat[index] = time.monotonic()
            if version.value != worker.version:
                with lock:
                    v, flat = version.value, view.copy()
                worker.load(v, flat)
            traj = worker.rollout()
            while not stop.is_set():
                heartbeat[index] = time.monotonic()
                try:
                    out.put(("traj", traj), timeout=0.5)
                    break
                except queue_mod.Full:
                    continue
        out.cancel_join_thread()
    except BaseException as exc:
        out.put(("error", ErrorReport.of(f"IMPALA worker {index}", exc)))
    finally:
        if worker is not None:
            worker.close()


class LocalActors:
    """`algo.num_workers` actor processes on this machine (`process_context`): the transport
    of a `WorkerPool`, which restarts one that dies or whose heartbeat stops.

    Parameters live in one shared float32 array guarded by a lock; trajectories come back
    through a bounded queue (its size bounds the policy lag).
    """

    def __init__(self, cfg: Config, updates: int = 0):
        self.cfg = cfg
        self.ctx = process_context()
        n = cfg.algo.num_workers
        self.queue = self.ctx.Queue(maxsize=max(n, cfg.algo.learner_batch))
        self.stop_event = self.ctx.Event()
        self.lock = self.ctx.Lock()
        self.version = self.ctx.Value("q", -1, lock=False)
        self.heartbeat = self.ctx.RawArray("d", n)
        self.params = None
        self.procs: list = [None] * n
        self.pool = WorkerPool("IMPALA worker", n, self, cfg.run.worker_timeout,
                               cfg.run.max_worker_restarts, cfg.run.seed, updates)

    @property
    def restarts(self) -> int:
        return self.pool.restarts

    def start(self, version: int, flat: np.ndarray) -> None:
        """Start the actors on these parameters (the `ExperienceSource` call)."""
        self.params = self.ctx.RawArray("f", flat.size)
        self.publish(version, flat)
        self.pool.start_all()

    # ------------------------------------------------------------ the pool's transport

    def start_worker(self, index: int, seed: int) -> None:
        self.heartbeat[index] = 0.0  # until it has made its envs: start-up time
        self.procs[index] = start_process(
            self.ctx, _actor_main, (self.cfg.to_dict(), index, seed, self.queue, self.params,
                                    self.version, self.lock, self.stop_event, self.heartbeat),
            f"impala-actor-{index}", daemon=True)

    def stop_worker(self, index: int) -> None:
        proc = self.procs[index]
        if proc is not None and proc.exitcode is None:
            proc.kill()
            proc.join(5)

    def exit_code(self, index: int) -> int | None:
        proc = self.procs[index]
        return None if proc is None else proc.exitcode

    # ------------------------------------------------------------ experience

    def publish(self, version: int, flat: np.ndarray) -> None:
        with self.lock:
            np.frombuffer(self.params, dtype=np.float32)[:] = flat
            self.version.value = version

    def next(self) -> Trajectory:
        """The next trajectory from any actor. At least once a second the pool looks at its
        workers, even while the others keep the queue full: a dead actor is replaced then,
        not when the queue first runs dry."""
        while True:
            if self.pool.check_due():
                self._check_workers()
            try:
                kind, payload = self.queue.get(timeout=1.0)
            except queue_mod.Empty:
                self._check_workers()
                continue
            if kind == "error":
                raise_report(payload)
            return payload

    def _check_workers(self) -> None:
        """Take the heartbeats the actors wrote into shared memory, then let the pool
        judge them."""
        for index, state in enumerate(self.pool.workers):
            beat = self.heartbeat[index]
            if beat > state.last_seen:
                self.pool.heard_from(index, started_up=True)
        self.pool.check()

    def close(self) -> None:
        self.stop_event.set()
        deadline = time.time() + 10
        while time.time() < deadline and any(p is not None and p.is_alive()
                                             for p in self.procs):
            try:  # drain so that no worker blocks on a full queue
                while True:
                    self.queue.get_nowait()
            except (queue_mod.Empty, OSError, EOFError):
                pass
            time.sleep(0.05)
        for proc in self.procs:
            reap_process(proc)
        self.queue.close()
        self.queue.cancel_join_thread()
