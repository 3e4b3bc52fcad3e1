"""A2C and PPO on Ray (`run.backend: ray`, placement `sync`): Ray actors step the envs,
this process acts and learns.

`RayVecEnv` is a `VecEnv` whose `algo.num_workers` Ray actors each hold a contiguous
slice of the `env.num_envs` envs. `step(actions)` sends every actor its slice of the
actions and gathers their answers in order, so the rollout is one `[T, N]` batch and the
sampler and learner are those of the local synchronous placement (algorithms/compose.py). Env i is
seeded as in one process (`run.seed + i`), so with an env backend that seeds each env on
its own (sync, async) a Ray run equals the local one update for update. Gymnasium's
vectorized backend (`env.backend: vector`) draws all its envs from one random stream: on
Ray each actor has its own, so such runs differ from local ones (and learn the same).

Faults: an env that raises in an actor stops the run with the env's message (EnvError);
an actor or its node that dies stops it with one line naming the actor, its envs and its
node (WorkerFailure). Its envs' episodes cannot be continued elsewhere: the run keeps its
last good parameters in the final checkpoint and `--resume` starts new episodes on the
nodes that are left. Ray is imported only where it is used.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import numpy as np

from actorcritic.errors import EnvError, WorkerFailure


class RayEnvActor:
    """The body of one Ray actor: envs start..start+count-1 of the run's vector."""

    def __init__(self, env_cfg, start: int, count: int, seed: int):
        self.env_cfg, self.start, self.count, self.seed = env_cfg, start, count, seed
        self.envs = None

    def make(self) -> tuple[Any, Any, str]:
        """Build the envs (an error here reaches the driver as the env's own message):
        their spaces and the node this actor runs on."""
        import ray

        from actorcritic.envs import make_vector_env

        self.envs = make_vector_env(self.env_cfg, num_envs=self.count,
                                    seed=self.seed + self.start, mode="train")
        context = ray.get_runtime_context()
        node = f"{ray.util.get_node_ip_address()} {context.get_node_id()[:8]}"
        return self.envs.single_observation_space, self.envs.single_action_space, node

    def reset(self, seed: int | None) -> np.ndarray:
        return self.envs.reset(seed=None if seed is None else seed + self.start)

    def step(self, actions: np.ndarray) -> tuple:
        obs, reward, terminated, truncated, episodes = self.envs.step(actions)
        for ep in episodes:   # the index in the whole vector
            ep.env_index += self.start
        return obs, reward, terminated, truncated, episodes

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()


def env_actor_name(index: int, generation: int = 0) -> str:
    """Actor names (in the job's namespace): users find an env actor by name. A second
    RayVecEnv in one driver (two runs on one `ray.init`) gets names of its own."""
    return f"actorcritic-envs-{index}" + (f"-g{generation}" if generation else "")


def shares(num_envs: int, actors: int) -> list[tuple[int, int]]:
    """(first env, count) of each actor: contiguous, sizes differing by at most one."""
    actors = max(1, min(actors, num_envs))
    sizes = [num_envs // actors + (k < num_envs % actors) for k in range(actors)]
    starts = np.cumsum([0] + sizes[:-1])
    return [(int(s), n) for s, n in zip(starts, sizes, strict=True)]


_GENERATIONS = itertools.count()
# Seconds an env actor may take to start (a new Ray worker imports torch and makes its envs).
START_TIMEOUT = 180.0


class RayVecEnv:
    """`env.num_envs` envs stepped by Ray actors, one slice each, behind the VecEnv
    interface: answers are gathered in actor order, so the batch is the local one."""

    def __init__(self, ray, cfg):
        self.ray, self.env_id = ray, cfg.env.id
        self.timeout = cfg.run.worker_timeout
        self.slices = shares(cfg.env.num_envs, cfg.algo.num_workers)
        remote = ray.remote(num_cpus=1, max_restarts=0)(RayEnvActor)
        generation = next(_GENERATIONS)
        self.actors = [remote.options(name=env_actor_name(k, generation),
                                      scheduling_strategy="SPREAD")
                       .remote(cfg.env, start, count, cfg.run.seed)
                       for k, (start, count) in enumerate(self.slices)]
        self.nodes = ["(not started)"] * len(self.actors)
        try:
            made = self._gather([a.make.remote() for a in self.actors], "make",
                                START_TIMEOUT)
        except BaseException:
            self.close()
            raise
        self.nodes = [node for _, _, node in made]
        self.single_observation_space, self.single_action_space, _ = made[0]
        self.num_envs = cfg.env.num_envs

    def reset(self, seed: int | None = None) -> np.ndarray:
        return np.concatenate(self._gather([a.reset.remote(seed) for a in self.actors],
                                           "reset"))

    def step(self, actions: np.ndarray):
        refs = [actor.step.remote(actions[start:start + count])
                for actor, (start, count) in zip(self.actors, self.slices, strict=True)]
        parts = self._gather(refs, "step")
        obs, reward, terminated, truncated = (np.concatenate([p[i] for p in parts])
                                              for i in range(4))
        return obs, reward, terminated, truncated, [ep for p in parts for ep in p[4]]

    def _gather(self, refs: list, what: str, timeout: float | None = None) -> list:
        """Every actor's answer, in order; a failure is one line naming the actor."""
        out = []
        for k, ref in enumerate(refs):
            try:
                out.append(self._get(k, ref, what, timeout or self.timeout))
            except BaseException:
                # Fetch the others' answers: Ray prints an error nobody fetched to stderr.
                with contextlib.suppress(Exception):
                    self.ray.wait(refs[k + 1:], num_returns=len(refs) - k - 1, timeout=5)
                    for rest in refs[k + 1:]:
                        with contextlib.suppress(Exception):
                            self.ray.get(rest, timeout=0)
                raise
        return out

    def _get(self, k: int, ref, what: str, timeout: float):
        ray = self.ray
        try:
            return ray.get(ref, timeout=timeout)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            message = str(cause) if isinstance(cause, EnvError) else \
                f"env '{self.env_id}' raised {type(cause).__name__} in {what}(): " \
                f"{_first_line(cause)}"
            raise EnvError(f"{self._who(k)}: {message}") from None
        except ray.exceptions.GetTimeoutError:
            if what == "make":
                raise WorkerFailure(f"{self._who(k)} did not start within {timeout:g} s: the "
                                    f"cluster may have no free CPU for it (each env actor "
                                    f"takes one; algo.num_workers sets how many)") from None
            raise WorkerFailure(f"{self._who(k)} did not answer {what}() within {timeout:g} s "
                                f"(run.worker_timeout)") from None
        except ray.exceptions.RayError as exc:
            raise WorkerFailure(f"{self._who(k)} died in {what}() ({type(exc).__name__}: "
                                f"{_first_line(exc)}); its envs' episodes cannot go on "
                                f"elsewhere") from None

    def _who(self, k: int) -> str:
        start, count = self.slices[k]
        return f"Ray env actor {k} (envs {start}-{start + count - 1}, node {self.nodes[k]})"

    def close(self) -> None:
        """Close the envs where the actors still answer, then end the actors."""
        closing = [a.close.remote() for a in self.actors]
        with contextlib.suppress(Exception):
            self.ray.wait(closing, num_returns=len(closing), timeout=10)
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_vector_on_ray(session, model, resume=None) -> None:
    """A2C or PPO with the envs on Ray actors: the local synchronous path otherwise."""
    from actorcritic.algorithms.compose import run_vector
    from actorcritic.distributed.ray_backend import ray_cluster

    cfg = session.cfg
    with ray_cluster(cfg) as ray:
        where = cfg.run.ray_address or "a local cluster on 127.0.0.1"

        def make_envs() -> RayVecEnv:
            envs = RayVecEnv(ray, cfg)
            alive = sum(1 for node in ray.nodes() if node.get("Alive"))
            hosts = ", ".join(f"{node} x{envs.nodes.count(node)}"
                              for node in dict.fromkeys(envs.nodes))
            session.progress.message(
                f"Ray: {len(envs.actors)} env actors step {envs.num_envs} envs on {where} "
                f"({alive} node(s); actors on {hosts}); this process acts and learns")
            return envs

        run_vector(session, model, resume, make_envs=make_envs)
