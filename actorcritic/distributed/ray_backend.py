"""Ray backend (`run.backend: ray`): rollout workers are Ray actors placed anywhere on a
cluster; the learner stays in the driver process.

Two algorithms run on it, both through the learner loop of algorithms/impala.py:
- `algo.name: impala`: actors send trajectories with their behaviour log-probabilities,
  the learner applies V-trace.
- `algo.name: a3c_ps` (A3C with a parameter server): actors compute the A3C gradient
  (`rollout_loss`) on their copy of the model and send it; the learner applies each
  gradient as it arrives. Local A3C (`algo.name: a3c`) is a different algorithm: its
  workers step one shared optimizer themselves (Hogwild).

Parameters go to the object store once per version (`ray.put` when a worker first needs
that version); tasks carry only the reference, and a worker fetches it only when its
version is older. A worker that dies is replaced (at most `run.max_worker_restarts` times)
and training goes on. Ray is imported only here.

`run.ray_address: ''` starts a private local cluster bound to 127.0.0.1 (every server
listens on loopback only, see `loopback_only`) with the dashboard off and token
authentication on, and shuts it down at the end; `auto` or `HOST:PORT` joins a running cluster (see
docs/DISTRIBUTED.md for what to secure there).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch import nn

from actorcritic.config import Config
from actorcritic.errors import ConfigError, WorkerFailure
from actorcritic.extras import require
from actorcritic.run.workers import ErrorReport, WorkerPool, raise_report
from actorcritic.samplers.experience import Trajectory, WorkerGradient


def import_ray():
    return require("ray", "ray", "run.backend=ray", ConfigError)


@contextlib.contextmanager
def ray_cluster(cfg: Config) -> Iterator[Any]:
    """Connect to (or start) the cluster for this run; always disconnect at the end.

    An existing connection of the calling process (ray.init done by the user) is used as
    found and left open.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = cfg.run.ray_address.strip()
    # No usage statistics leave the machine unless the user turns them on.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        _check_reachable(ray, address)
        try:
            ray.init(address=address, logging_level="warning")
        except (ConnectionError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"cannot join the Ray cluster at run.ray_address={address!r} ({first}); "
                f"start one with `ray start --head --node-ip-address=127.0.0.1`, or leave "
                f"run.ray_address empty for a private local cluster") from None
    else:
        # "local": always a new private cluster, never one found through RAY_ADDRESS or
        # the last `ray start`. Ray >= 2.59 turns token authentication on for it (unless
        # RAY_AUTH_MODE says otherwise) and says so in a warning line on every run; the
        # token is kept and the line dropped.
        with loopback_only(), quiet_logger(AUTH_LOGGER):
            ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                     num_cpus=max(os.cpu_count() or 1, cfg.algo.num_workers),
                     logging_level="warning")
            try:
                yield ray
            finally:
                ray.shutdown()
        return
    try:
        yield ray
    finally:
        ray.shutdown()


SINGLE_MACHINE_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Drop the warnings of one logger inside the block (errors still show)."""
    import logging

    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Keep a private local cluster on 127.0.0.1.

    On Linux Ray replaces a loopback node address by the machine's routable one (so other
    nodes could join) and its gRPC servers then listen on every interface. In Ray's
    single-machine mode (the default on macOS and Windows, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
    =0` elsewhere) the node address stays 127.0.0.1 and every server listens on loopback
    only. The mode is read when Ray is imported, so the module constant is set as well, and
    both are restored afterwards: joining a real cluster later needs the routable address.
    """
    from ray._private import ray_constants

    old_env = os.environ.get(SINGLE_MACHINE_VAR)
    old_flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    os.environ[SINGLE_MACHINE_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = old_flag
        if old_env is None:
            os.environ.pop(SINGLE_MACHINE_VAR, None)
        else:
            os.environ[SINGLE_MACHINE_VAR] = old_env


def _check_reachable(ray, address: str) -> None:
    """Fail in seconds on a HOST:PORT nobody listens on (ray.init retries for minutes)."""
    import socket

    target = address
    if address == "auto":   # the cluster of the last `ray start` on this machine, if any
        try:
            from ray._private.services import canonicalize_bootstrap_address

            target = canonicalize_bootstrap_address("auto") or ""
        except Exception:  # a private helper of Ray: when it moves, let ray.init decide
            return
        if not target:
            raise ConfigError("run.ray_address=auto found no running Ray cluster on this "
                              "machine; start one with `ray start --head` or leave "
                              "run.ray_address empty for a private local cluster")
    if "://" in target or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot join the Ray cluster at run.ray_address={address!r}: "
                          f"{reason or 'unreachable'}; check the address (the head node prints "
                          f"it), or leave run.ray_address empty for a private local cluster"
                          ) from None


class RayRolloutWorker:
    """The body of a Ray actor: an `ActorWorker` plus parameter fetching by version.

    `box` is a one-element list holding the ObjectRef of the parameters, so Ray passes the
    reference instead of resolving it: the worker fetches only versions it does not have.
    """

    def __init__(self, cfg_dict: dict, index: int, seed: int):
        from actorcritic.samplers.actors import ActorWorker

        self.worker = ActorWorker(cfg_dict, index, seed)

    def _sync(self, version: int, box: list) -> None:
        if version != self.worker.version:
            import ray

            self.worker.load(version, ray.get(box[0]))

    def rollout(self, version: int, box: list) -> Trajectory:
        self._sync(version, box)
        return self.worker.rollout()

    def gradients(self, version: int, box: list) -> WorkerGradient:
        self._sync(version, box)
        return self.worker.gradients()


def worker_name(index: int, generation: int) -> str:
    """Actor names (in the job's namespace): tests and users find a worker by name."""
    return f"actorcritic-worker-{index}" + (f"-r{generation}" if generation else "")


class RayActors:
    """`algo.num_workers` Ray actors as the learner's experience source: the transport of a
    `WorkerPool`, which replaces an actor that died or sent nothing for too long.

    Each actor has `depth` tasks queued. With 1, a finished task is replaced as soon as the
    learner takes its result (before the update), so actors hardly wait and the policy lag
    matches the local backend's; 2 keeps actors busy through slow updates at one more
    version of lag.
    """

    def __init__(self, ray, cfg: Config, method: str, depth: int = 1, updates: int = 0):
        self.ray, self.cfg, self.method = ray, cfg, method
        self.n = cfg.algo.num_workers
        self.depth = depth
        self.remote_cls = ray.remote(num_cpus=1)(RayRolloutWorker)
        self.actors: list[Any] = [None] * self.n
        self.pending: dict[Any, tuple[int, int]] = {}   # ref -> (worker, incarnation)
        self.puts = 0
        self.version = -1
        self.flat: np.ndarray | None = None
        self.params_ref = None
        self.pool = WorkerPool("Ray worker", self.n, self, cfg.run.worker_timeout,
                               cfg.run.max_worker_restarts, cfg.run.seed, updates)

    @property
    def restarts(self) -> int:
        return self.pool.restarts

    # -- parameters

    def publish(self, version: int, flat: np.ndarray) -> None:
        self.version, self.flat, self.params_ref = version, flat, None

    def _params(self):
        if self.params_ref is None:   # one object per version, shared by every worker
            self.params_ref = self.ray.put(self.flat)
            self.puts += 1
        return self.params_ref

    # -- workers: the pool's transport

    def start(self, version: int, flat: np.ndarray) -> None:
        self.publish(version, flat)
        self.pool.start_all()

    def start_worker(self, i: int, seed: int) -> None:
        gen = self.pool.workers[i].incarnation
        self.actors[i] = self.remote_cls.options(name=worker_name(i, gen)).remote(
            self.cfg.to_dict(), i, seed)
        for _ in range(self.depth):
            self._submit(i)

    def stop_worker(self, i: int) -> None:
        if self.actors[i] is not None:
            with contextlib.suppress(Exception):
                self.ray.kill(self.actors[i], no_restart=True)
        self.pending = {r: v for r, v in self.pending.items() if v[0] != i}

    def exit_code(self, i: int) -> int | None:
        return None  # a dead actor shows when its result is fetched

    def _submit(self, i: int) -> None:
        ref = getattr(self.actors[i], self.method).remote(self.version, [self._params()])
        self.pending[ref] = (i, self.pool.workers[i].incarnation)

    def next(self) -> Trajectory | WorkerGradient:
        """The next result of any actor. The pool looks at its actors at least once a
        second, even while the others keep sending: an actor that hangs is replaced after
        `run.worker_timeout`, not only once every actor has gone quiet."""
        ray = self.ray
        while True:
            if self.pool.check_due():
                self.pool.check()
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=1.0)
            if not ready:
                self.pool.check()
                continue
            ref = ready[0]
            i, gen = self.pending.pop(ref)
            if gen != self.pool.workers[i].incarnation:
                continue  # a result of a replaced actor
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                if exc.actor_init_failed:
                    raise WorkerFailure(f"Ray worker {i} could not start: {exc}") from None
                self.pool.restart(i, "died")
                continue
            except ray.exceptions.RayTaskError as exc:
                raise_report(ErrorReport.of(f"Ray worker {i}", exc.cause, trace=str(exc)))
            self.pool.heard_from(i)
            self._submit(i)
            return result

    def nodes(self) -> int:
        return sum(1 for node in self.ray.nodes() if node.get("Alive"))

    def close(self) -> None:
        self.pool.stop_all()
        self.pending.clear()


def run_ray(session, model: nn.Module, resume=None) -> None:
    """Train `algo.name` a3c_ps or impala with Ray actors as the workers."""
    from actorcritic.algorithms.impala import run_learner

    cfg = session.cfg
    method, mode = ("rollout", "trajectories") if cfg.algo.name == "impala" else \
        ("gradients", "gradients")
    with ray_cluster(cfg) as ray:
        source = RayActors(ray, cfg, method, updates=session.updates)
        where = cfg.run.ray_address or "a local cluster on 127.0.0.1"
        session.progress.message(f"Ray: {source.n} {cfg.algo.name} workers on {where} "
                                 f"({source.nodes()} node(s))")
        try:
            run_learner(session, model, resume, source, mode=mode)
        finally:
            source.close()
