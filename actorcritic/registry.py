"""Which algorithm runs on which sampler placement and backend: the one table that decides.

Every algorithm lists its placements: where its rollouts are collected and its updates
made. A placement is selected by config keys (`algo.processes`, `algo.overlap`,
`run.backend`); the registry reads them (`placement_of`), validation refuses a
combination the table lacks with one line naming what exists (`check`), and training
runs the placement's entry point (`runner_for`). Nothing else dispatches on
`algo.name` or `run.backend`.

Adding an algorithm is one module with an entry point `run(session, model, resume)` and
one `Algorithm` here (with the function that builds its model, when it is not the
ActorCritic of models/actor_critic.py).

    algorithm   placement   backend   what runs
    a2c, ppo    sync        local     one process steps the envs, acts and learns
    a2c, ppo    overlap     local     an acting thread collects the next rollout meanwhile
    a2c         processes   local     helpers each step a share of the envs; gradients summed
    a2c, ppo    sync        ray       Ray actors each step a slice of the envs; this process
                                      acts on the whole batch and learns (as sync local)
    a3c         workers     local     Hogwild workers step one shared model and optimizer
    impala      actors      local     actor processes send trajectories; V-trace learner
    impala      actors      ray       the same actors as Ray actors
    a3c_ps      actors      ray       Ray actors send gradients to one parameter server
    sac, td3    replay      local     one process steps the envs into a replay buffer and
                                      learns from minibatches of it
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actorcritic.errors import ConfigError

BACKENDS = ("local", "ray")


# The keys that select a placement other than an algorithm's first one (its default).
SELECTORS: dict[str, dict[str, Any]] = {"processes": {"algo.processes": 2},
                                        "overlap": {"algo.overlap": True}}


@dataclass(frozen=True)
class Placement:
    """Where an algorithm's sampling and learning run."""

    name: str      # sync | overlap | processes | workers | actors | replay
    backend: str   # local | ray
    runner: str    # "module:function", called as function(session, model, resume)
    summary: str
    in_process: bool = False  # the envs and the model live in the training process only
    cpu_only: str = ""  # why it trains on the CPU whatever run.device says ("": it need not)
    # it steps env.players > 1 football players per game as rows of one batch (its envs come
    # from make_vector_env here or in its helpers, and it counts game steps)
    several_players: bool = False


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    placements: tuple[Placement, ...]  # the first is the one used when no key selects another
    off_policy: bool = False  # learns from a replay buffer (reads the off-policy algo keys)
    model: str = "actorcritic.models.actor_critic:build_actor_critic"  # "module:function"
    # "module:function" called with (cfg, obs_space, action_space) before anything is
    # written: refuses spaces the algorithm cannot learn on ("": any space the model takes)
    check_spaces: str = ""

    def placement(self, name: str, backend: str) -> Placement | None:
        return next((p for p in self.placements if (p.name, p.backend) == (name, backend)),
                    None)


_VECTOR = "actorcritic.algorithms.compose:run_vector"
_RAY = "actorcritic.distributed.ray_backend:run_ray"
_RAY_VECTOR = "actorcritic.distributed.ray_envs:run_vector_on_ray"
_OFF_POLICY = "actorcritic.algorithms.off_policy:run_off_policy"
_OFF_POLICY_MODEL = "actorcritic.models.off_policy:build_off_policy_model"
_REPLAY_FITS = "actorcritic.algorithms.off_policy:check_replay_fits"


def _vector_placements(processes: bool) -> tuple[Placement, ...]:
    out = [Placement("sync", "local", _VECTOR, "one process steps the envs, acts and learns",
                     in_process=True, several_players=True),
           Placement("overlap", "local", _VECTOR, "an acting thread collects the next rollout "
                     "while the update runs (the policy acts one update behind)",
                     in_process=True, several_players=True)]
    if processes:
        out.append(Placement("processes", "local", _VECTOR, "helper processes each step a "
                             "share of the envs; their gradients are summed into one step",
                             several_players=True))
    out.append(Placement("sync", "ray", _RAY_VECTOR, "Ray actors each step a slice of the "
                         "envs, gathered each step into one batch that this process acts on "
                         "and learns from as on sync local"))
    return tuple(out)


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("a2c", "synchronous advantage actor-critic over a vector of envs",
              _vector_placements(processes=True)),
    Algorithm("ppo", "proximal policy optimization: clipped epochs of minibatches per rollout",
              _vector_placements(processes=False)),
    Algorithm("a3c", "asynchronous advantage actor-critic: Hogwild workers on shared memory",
              (Placement("workers", "local", "actorcritic.algorithms.a3c:run_a3c",
                         "worker processes each step one shared model and optimizer",
                         cpu_only="its workers share the model in CPU memory"),)),
    Algorithm("impala", "actors and a central learner with V-trace off-policy correction",
              (Placement("actors", "local", "actorcritic.algorithms.impala:run_impala",
                         "actor processes send trajectories"),
               Placement("actors", "ray", _RAY, "Ray actors send trajectories"))),
    Algorithm("a3c_ps", "A3C with a parameter server: Ray actors send gradients to one learner",
              (Placement("actors", "ray", _RAY, "Ray actors send gradients"),)),
    *(Algorithm(name, summary, (Placement("replay", "local", _OFF_POLICY, "one process steps "
                                          "the envs, stores transitions in a replay buffer and "
                                          "learns from minibatches of it", in_process=True),),
                off_policy=True, model=_OFF_POLICY_MODEL, check_spaces=_REPLAY_FITS)
      for name, summary in (
          ("sac", "soft actor-critic: twin critics, a squashed Gaussian actor, tuned entropy"),
          ("td3", "twin delayed DDPG: twin critics, a deterministic actor, smoothed targets"))),
)}


def placement_of(cfg) -> str:
    """The placement the config's keys select for its algorithm."""
    if cfg.algo.processes > 1:
        return "processes"
    if cfg.algo.overlap:
        return "overlap"
    return ALGORITHMS[cfg.algo.name].placements[0].name


def placement_label(cfg) -> str:
    """How start lines name the placement: 'sync', or 'sync (ray)' off the local backend."""
    name = placement_of(cfg)
    return name if cfg.run.backend == BACKENDS[0] else f"{name} ({cfg.run.backend})"


def check(cfg) -> Placement:
    """The placement this config selects, or one ConfigError naming what exists."""
    if cfg.algo.processes > 1 and cfg.algo.overlap:
        raise ConfigError("algo.overlap and algo.processes > 1 are two ways to use the cores; "
                          "choose one")
    algo, name, backend = ALGORITHMS[cfg.algo.name], placement_of(cfg), cfg.run.backend
    placement = algo.placement(name, backend)
    if placement is not None:
        return placement
    asked = ", ".join([f"run.backend={backend}"] + [
        f"{key}={cfg_value(cfg, key)}" for key in SELECTORS.get(name, {})])
    have = ", ".join(f"{p.name} on {p.backend}" for p in algo.placements)
    raise ConfigError(f"algo.name={algo.name} has no '{name}' placement on {backend} "
                      f"({asked}); {algo.name} runs as: {have}{_hint(algo, name, backend)}")


def _hint(algo: Algorithm, name: str, backend: str) -> str:
    """What to change: the backend the algorithm has this placement on, and the
    algorithms that run on the asked placement (or backend)."""
    if name in SELECTORS:
        where = f"{name} on {backend}"
        others = [a.name for a in ALGORITHMS.values() if a.placement(name, backend)]
    else:
        where = f"on {backend}"
        others = [a.name for a in ALGORITHMS.values()
                  if any(p.backend == backend for p in a.placements)]
    hints = [f"set run.backend={p.backend}" for p in algo.placements if p.name == name][:1]
    if others:
        hints.append(f"{where}: algo.name={' or '.join(others)}")
    return "; " + ", or ".join(hints) if hints else ""


def cfg_value(cfg, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _imported(path: str) -> Callable[..., Any]:
    module, function = path.split(":")
    return getattr(importlib.import_module(module), function)


def runner_for(cfg) -> Callable[..., None]:
    """The entry point of the placement the config selects (imported only when used)."""
    return _imported(check(cfg).runner)


def model_builder(cfg) -> Callable[..., Any]:
    """The function that builds the algorithm's model: (cfg, obs_space, action_space)."""
    return _imported(ALGORITHMS[cfg.algo.name].model)


def check_spaces(cfg, obs_space, action_space) -> None:
    """Refuse, with one ConfigError, spaces (or a replay buffer) the algorithm cannot use."""
    check = ALGORITHMS[cfg.algo.name].check_spaces
    if check:
        _imported(check)(cfg, obs_space, action_space)


def requestable() -> list[tuple[str, str, str]]:
    """Every (algorithm, placement, backend) a config can ask for, supported or not: each
    algorithm's default placement and every key-selected one, on every backend."""
    return [(a.name, n, b) for a in ALGORITHMS.values()
            for n in dict.fromkeys([a.placements[0].name, *SELECTORS]) for b in BACKENDS]


def overrides_for(algorithm: str, placement: str, backend: str) -> list[str]:
    """`--set` strings that ask for this combination (supported or not)."""
    sets = [f"algo.name={algorithm}", f"run.backend={backend}"]
    return sets + [f"{k}={str(v).lower()}" for k, v in SELECTORS.get(placement, {}).items()]


def is_supported(algorithm: str, placement: str, backend: str) -> bool:
    return ALGORITHMS[algorithm].placement(placement, backend) is not None
