"""Google Research Football on two engines behind `make_vector_env`.

Ids: `gfootball/<scenario>-v1` (EnvPool's spelling) or `football/<scenario>`; the scenario is
any of `SCENARIOS` (every academy scenario, 1_vs_1_easy, 5_vs_5, the 11_vs_11 games).

Backends (`env.backend`):
- `envpool`: EnvPool's built-in C++ engine (pip only). Observation: the super minimap
  (`env.representation: extracted`), uint8 [4, 72, 96] channel-first (left team, right team,
  ball, active player; 0 or 255). 19 actions. The scoring reward; the checkpoint reward
  is computed here from the minimap (football_checkpoints.py).
- `gfootball`: the official engine (`make football` builds it into .venv), one process per
  env when `num_envs > 1`; `sync` / `async` pick in-process / subprocess envs explicitly.
  Observations by `env.representation`: `simple115v2` / `simple115` float32 [115] (x, y
  positions in about [-1, 1], ball height, one-hots);
  `extracted` uint8 [4, 72, 96]; `pixels` uint8 [3, 72, 96]; `pixels_gray` uint8 [1, 72, 96].
  Videos (render=True) always use this engine; a model trained on EnvPool's minimap is
  rendered with `extracted`, the same observation.

Rewards. The training reward of one step is

    r = scoring + (checkpoint if env.checkpoint_reward) - env.time_penalty

where `scoring` is +1 for a goal scored, -1 for a goal conceded, and `checkpoint` is the
official checkpoint reward (+0.1 the first time the ball carrier enters each of 10 zones on
the way to the opponent goal, all paid out on scoring). The official engine computes it
itself; on EnvPool's engine `CheckpointReward` computes it from the minimap's ball and
active-player pixels and `info["ball_owned_team"]`, which gives the official episode total
in 94.8% of 500 episodes and is never more than one checkpoint (0.1) off. The
notebook this comes from found that a time penalty slows early learning; it is off by default.

Metrics. `Episode.ret` is the raw scoring return, i.e. the goal difference; every finished
episode carries `extras = {"score_diff": d, "win": d > 0, "draw": d == 0, "loss": d < 0}`
(as 1.0/0.0), which the run turns into `charts/win_rate_100` and the eval `win_rate`.

Several players (`env.players: K`, official engine): `GFootballEnv` controls K left players
and gives [K, ...] observations; football_players.py makes each player one row of the batch.

Episode ends. The scenario decides (goal in academy scenarios, ball lost, out of play):
`terminated`. The match clock running out (the scenario's `game_duration`) and
`env.max_episode_steps` are step limits: `truncated`, so the learner bootstraps from the value
of the last observation (no representation shows the clock).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from actorcritic.config import EnvConfig
from actorcritic.envs.football_checkpoints import CheckpointReward
from actorcritic.envs.football_scenarios import ScenarioDraw, scenarios_of
from actorcritic.envs.vector import EXTRAS_KEY, Episode, GymVecEnv
from actorcritic.errors import EnvError
from actorcritic.extras import require
from actorcritic.memory import available_memory

IMAGE_REPRESENTATIONS = ("extracted", "pixels", "pixels_gray")
# info key of a several-player env's per-player training rewards (FootballReward)
PLAYER_REWARDS_KEY = "player_rewards"
INSTALL_HINT = "run `make football` (scripts/install_gfootball.sh) to build it into .venv"


# ---------------------------------------------------------------- rewards, outcomes

def shaped_reward(scoring: Any, checkpoint: Any, cfg: EnvConfig) -> Any:
    """The training reward: scoring, plus the checkpoint reward if enabled, minus the time
    penalty. Works on scalars and arrays."""
    reward = scoring - cfg.time_penalty
    if cfg.checkpoint_reward:
        reward = reward + checkpoint
    return reward


def outcome_extras(score_diff: float) -> dict[str, float]:
    """Per-episode metrics from the final goal difference (left team minus right team)."""
    d = float(score_diff)
    return {"score_diff": d, "win": float(d > 0), "draw": float(d == 0), "loss": float(d < 0)}


class GoalTracker:
    """Goal difference of each env's current episode, accumulated from scoring rewards.

    `step(scoring, done, live)` adds the scoring rewards of live steps (not the reset step
    that follows an episode end) and returns {env index: outcome extras} for the episodes
    that `done` ends.
    """

    def __init__(self, num_envs: int):
        self.diff = np.zeros(num_envs, np.float64)

    def reset(self) -> None:
        self.diff[:] = 0

    def step(self, scoring: np.ndarray, done: np.ndarray,
             live: np.ndarray | None = None) -> dict[int, dict[str, float]]:
        scoring = np.asarray(scoring, np.float64)
        live = np.ones_like(self.diff, bool) if live is None else np.asarray(live, bool)
        self.diff[live] += scoring[live]
        out = {}
        for i in np.flatnonzero(np.asarray(done, bool) & live):
            out[int(i)] = outcome_extras(self.diff[i])
            self.diff[i] = 0
        return out


# ---------------------------------------------------------------- EnvPool engine

# Resident memory of one engine of EnvPool's football pool, measured: 57 MB per env of a
# pool of 16 (academy_3_vs_1_with_keeper, EnvPool 1.2.5).
ENVPOOL_ENGINE_BYTES = 60 * 2**20


def check_pools_fit(scenarios: int, num_envs: int) -> None:
    """One pool of `num_envs` engines per scenario: refuse, in one line, what would not fit
    in the memory this machine has free."""
    need, free = scenarios * num_envs * ENVPOOL_ENGINE_BYTES, available_memory()
    if scenarios > 1 and free is not None and need > free:
        raise EnvError(f"{scenarios} scenarios x {num_envs} envs on EnvPool's football engine "
                       f"are {scenarios * num_envs} engines, about {need / 2**30:.1f} GiB, and "
                       f"this machine has {free / 2**30:.1f} GiB available: lower "
                       f"env.num_envs, or use env.backend=gfootball (one engine per env)")


class FootballEnvPoolVecEnv:
    """EnvPool's football engine: minimap observations made channel-first, shaped rewards,
    goal-difference episode extras, and the clock end reported as truncation.

    EnvPool builds one pool per task, so a run over several scenarios holds one pool of
    `num_envs` engines per scenario, and env slot i plays its episode on engine i of the
    pool of its scenario. A slot whose next episode is in another pool starts it with an
    explicit reset of that engine, returned as the usual reset step (reward 0); the
    engine it leaves stays at its episode end until the slot comes back. With one
    scenario nothing switches and every step is one plain pool step.
    """

    def __init__(self, scenarios: tuple[str, ...], cfg: EnvConfig, num_envs: int, seed: int):
        envpool = require("envpool", "football", f"env '{cfg.id}' on env.backend=envpool")
        check_pools_fit(len(scenarios), num_envs)
        kwargs = dict(cfg.kwargs)
        if cfg.max_episode_steps:
            kwargs["max_episode_steps"] = cfg.max_episode_steps
        self.pools = []
        # EnvPool's default step limit is the scenario's game_duration (the match clock).
        self.game_duration = np.zeros(len(scenarios), np.int64)
        for k, scenario in enumerate(scenarios):
            task_id = f"gfootball/{scenario}-v1"
            self.game_duration[k] = int(envpool.make_spec(task_id).config.max_episode_steps)
            try:
                self.pools.append(envpool.make_gymnasium(task_id, num_envs=num_envs,
                                                         seed=seed + 10_000 * k, **kwargs))
            except (TypeError, ValueError) as exc:
                raise EnvError(f"env '{task_id}' rejected env.kwargs {cfg.kwargs}: "
                               f"{exc}") from None
        self.cfg = cfg
        self.num_envs = num_envs
        self.scenarios = scenarios
        self.scenario_draw = ScenarioDraw(scenarios, cfg.scenario_weights,
                                          cfg.scenario_curriculum, num_envs, seed)
        h, w, c = self.pools[0].observation_space.shape
        self.single_observation_space = gym.spaces.Box(0, 255, (c, h, w), np.uint8)
        self.single_action_space = self.pools[0].action_space
        self.goals = GoalTracker(num_envs)
        self.checkpoints = CheckpointReward(num_envs) if cfg.checkpoint_reward else None
        self._returns = np.zeros(num_envs, np.float64)
        self._lengths = np.zeros(num_envs, np.int64)
        self._reset_next = np.zeros(num_envs, bool)
        self._current = np.zeros(num_envs, np.int64)  # scenario index each slot plays
        self._next = np.zeros(num_envs, np.int64)     # ... and plays after its episode ends

    def _draw(self, slot: int) -> int:
        return self.scenarios.index(self.scenario_draw.draw(slot))

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._current[:] = [self._draw(i) for i in range(self.num_envs)]
        self._next[:] = self._current
        obs = np.empty((self.num_envs, *self.single_observation_space.shape), np.uint8)
        for k, pool in enumerate(self.pools):
            ids = np.flatnonzero(self._current == k)
            if ids.size:
                o, info = pool.reset(ids.astype(np.int32))
                obs[info["env_id"]] = o.transpose(0, 3, 1, 2)
        self.goals.reset()
        if self.checkpoints is not None:
            self.checkpoints.reset()
        self._returns[:] = 0
        self._lengths[:] = 0
        self._reset_next[:] = False
        return obs

    def scenario_of_slots(self) -> list[str]:
        """The scenario each env slot is playing now."""
        return [self.scenarios[k] for k in self._current]

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions)
        n = self.num_envs
        obs = np.empty((n, *self.single_observation_space.shape), np.uint8)
        scoring = np.zeros(n, np.float64)
        owner = np.full(n, -1, np.int64)  # team on the ball (-1: nobody, 0: left, 1: right)
        terminated, truncated, clock = (np.zeros(n, bool) for _ in range(3))
        switching = self._reset_next & (self._next != self._current)
        self._current[switching] = self._next[switching]
        for k, pool in enumerate(self.pools):
            ids = np.flatnonzero((self._current == k) & ~switching)
            if ids.size == n:
                o, r, te, tr, info = pool.step(actions)
            elif ids.size:
                o, r, te, tr, info = pool.step(actions[ids], ids.astype(np.int32))
            if ids.size:
                at = info["env_id"]
                obs[at], scoring[at], terminated[at], truncated[at] = \
                    o.transpose(0, 3, 1, 2), r, te, tr
                # The match clock ran out: a step limit, not a state the agent could see.
                clock[at] = info["elapsed_step"] >= self.game_duration[k]
                owner[at] = info["ball_owned_team"]
            started = np.flatnonzero(switching & (self._current == k))
            if started.size:  # the reset step of an episode in this pool's scenario
                o, info = pool.reset(started.astype(np.int32))
                obs[info["env_id"]] = o.transpose(0, 3, 1, 2)
        live = ~self._reset_next
        done = (terminated | truncated) & live
        clock &= done
        terminated = terminated & live & ~clock
        truncated = (truncated & live) | clock
        self._returns[live] += scoring[live]
        self._lengths[live] += 1
        episodes = []
        for i, extras in self.goals.step(scoring, done, live).items():
            scenario = self.scenarios[self._current[i]]
            episodes.append(Episode(i, float(self._returns[i]), int(self._lengths[i]), extras,
                                    scenario))
            self.scenario_draw.record(scenario, extras["win"])
            self._next[i] = self._draw(i)
            self._returns[i] = 0
            self._lengths[i] = 0
        self._reset_next = done
        checkpoint = 0.0 if self.checkpoints is None else \
            self.checkpoints.step(obs, scoring, owner, done, live)
        reward = np.where(live, shaped_reward(scoring, checkpoint, self.cfg), 0.0)
        return obs, reward.astype(np.float32), terminated, truncated, episodes

    def close(self) -> None:
        for pool in self.pools:
            pool.close()


# ---------------------------------------------------------------- official engine

def import_gfootball():
    # `import gym` (0.25, which gfootball is written for) prints a deprecation notice to
    # stderr; it says nothing about this use (we only call the env's own step/reset).
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            import gfootball.env as football_env
    except ImportError as exc:
        raise EnvError(f"the official Google Research Football engine (gfootball) is not "
                       f"installed ({exc}); {INSTALL_HINT}, or use env.backend=envpool") from None
    return football_env


# EnvPool's football engine points these at its own assets with a C setenv, which Python's
# os.environ does not see. The official engine reads them when it starts a game, and started
# after EnvPool's with a renderer it loads EnvPool's assets and dies (SIGSEGV in its object
# loader). Before each start it gets back the paths its package set (os.environ's values).
ENGINE_PATH_VARS = ("GFOOTBALL_DATA_DIR", "GFOOTBALL_FONT")


def restore_official_engine_paths() -> None:
    for name in ENGINE_PATH_VARS:
        if name in os.environ:
            os.putenv(name, os.environ[name])


class GFootballEnv(gym.Env):
    """The official engine (old gym API) as a Gymnasium env.

    reward = the scoring reward; `info["checkpoint_reward"]` holds the official checkpoint
    reward of the step (0 unless `checkpoints` is on). Image observations are channel-first.
    `render()` returns the engine's RGB frame when made with render=True. The scenario can
    change at each reset (`set_next_scenario`): the engine loads the scenario its config
    names whenever it resets.

    players > 1 controls that many left players: observations [players, ...] (each its own
    active player), actions MultiDiscrete (one per player), the scoring reward is the team's
    and `info["checkpoint_reward"]` is per player [players] (the engine pays each player
    for the zones it carried the ball through itself).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, scenario: str, representation: str = "simple115v2",
                 checkpoints: bool = False, render: bool = False,
                 render_resolution: int = 640, players: int = 1, slot: int = 0):
        football_env = import_gfootball()
        # The pixel representations are downsampled rendered frames: they need the renderer.
        render = render or representation.startswith("pixels")
        options = {"render_resolution_x": render_resolution,
                   "render_resolution_y": render_resolution * 9 // 16} if render else {}
        restore_official_engine_paths()
        with warnings.catch_warnings():  # gym 0.25's "old step API" notice, once per env
            warnings.simplefilter("ignore", DeprecationWarning)
            self.env = football_env.create_environment(
                env_name=scenario, representation=representation,
                rewards="scoring,checkpoints" if checkpoints else "scoring", render=render,
                number_of_left_players_agent_controls=players, other_config_options=options)
        self.render_mode = "rgb_array" if render else None
        self.scenario = scenario
        self.players = players
        self.slot = slot  # this env's index in its vector env (set_next_scenario)
        self._image = representation in IMAGE_REPRESENTATIONS
        space = self.env.observation_space
        if self._image:
            *k, h, w, c = space.shape
            self.observation_space = gym.spaces.Box(0, 255, (*k, c, h, w), np.uint8)
        else:
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, space.shape, np.float32)
        actions = self.env.action_space
        self.action_space = gym.spaces.Discrete(int(actions.n)) if players == 1 else \
            gym.spaces.MultiDiscrete(np.asarray(actions.nvec))
        self._rng = np.random.default_rng()

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        if self._image:  # [(players,) H, W, C] -> [(players,) C, H, W]
            return np.ascontiguousarray(np.moveaxis(np.asarray(obs, np.uint8), -1, -3))
        return np.asarray(obs, np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        # The engine draws each episode's seed from Python's global `random` unless one is
        # set; set it from this env's generator so a seeded reset replays the same episodes.
        config = self.env.unwrapped._config
        config["game_engine_random_seed"] = int(self._rng.integers(0, 2_000_000_000))
        config["level"] = self.scenario
        restore_official_engine_paths()
        return self._obs(self.env.reset()), {}

    def set_next_scenario(self, scenarios: list[str]) -> None:
        """The scenario of the episode the next reset starts: `scenarios[self.slot]` (one
        list for the whole vector env, since a vector env's `call` passes the same
        arguments to every env)."""
        self.scenario = scenarios[self.slot]

    def step(self, action):
        action = int(action) if self.players == 1 else [int(a) for a in action]
        obs, reward, done, info = self.env.step(action)
        scoring = float(info.get("score_reward", np.mean(reward)))
        checkpoint = np.asarray(reward, np.float64) - scoring
        info = {"checkpoint_reward": float(checkpoint) if self.players == 1 else checkpoint}
        clock_out = False
        if done:
            raw = self.env.unwrapped.observation()
            clock_out = int(raw[0]["steps_left"]) <= 0 if raw else False
        return self._obs(obs), scoring, done and not clock_out, done and clock_out, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        with warnings.catch_warnings():  # gym 0.25's notice about the `mode` argument
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.asarray(self.env.render(mode="rgb_array"), np.uint8)

    def close(self):
        self.env.close()


class FootballReward(gym.Wrapper):
    """Training reward (`shaped_reward`) on top of a `GFootballEnv`, and the episode's
    outcome extras in `info["episode_extras"]` on the step that ends it."""

    def __init__(self, env: gym.Env, cfg: EnvConfig):
        super().__init__(env)
        self.cfg = cfg
        self.goals = GoalTracker(1)

    def reset(self, **kwargs):
        self.goals.reset()
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, scoring, terminated, truncated, info = self.env.step(action)
        done = np.array([terminated or truncated])
        outcome = self.goals.step(np.array([scoring]), done)
        if outcome:
            info[EXTRAS_KEY] = outcome[0]
        checkpoint = info.get("checkpoint_reward", 0.0)
        reward = shaped_reward(scoring, checkpoint, self.cfg)
        if np.ndim(checkpoint):  # several players (env.players): each one's in info, the mean here
            info[PLAYER_REWARDS_KEY] = np.broadcast_to(reward, np.shape(checkpoint)).astype(
                np.float32)
            reward = np.mean(reward)
        return obs, float(reward), terminated, truncated, info


def make_gfootball_env(scenario: str, cfg: EnvConfig, representation: str,
                       render: bool = False, slot: int = 0) -> gym.Env:
    """One official-engine env: raw env, step limit, raw episode statistics, reward
    (with env.players > 1 one game of that many controlled players)."""
    env: gym.Env = GFootballEnv(scenario, representation, cfg.checkpoint_reward, render,
                                players=cfg.players, slot=slot)
    if cfg.max_episode_steps:
        env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    return FootballReward(env, cfg)


class GFootballVecEnv:
    """The official engine's envs (a `GymVecEnv`, in this process or one process each)
    with the scenario of each episode drawn here, where the episodes end: the draw tells
    the envs whose episode ended which scenario their next reset loads, and labels every
    finished episode with the scenario it played."""

    def __init__(self, envs: GymVecEnv, scenarios: tuple[str, ...], cfg: EnvConfig, seed: int):
        self.envs = envs
        self.num_envs = envs.num_envs
        self.single_observation_space = envs.single_observation_space
        self.single_action_space = envs.single_action_space
        self.scenario_draw = ScenarioDraw(scenarios, cfg.scenario_weights,
                                          cfg.scenario_curriculum, self.num_envs, seed)
        self.several = len(scenarios) > 1
        self._current = [scenarios[0]] * self.num_envs

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._current = [self.scenario_draw.draw(i) for i in range(self.num_envs)]
        self._send()
        return self.envs.reset(seed=seed)

    def scenario_of_slots(self) -> list[str]:
        """The scenario each env slot is playing now."""
        return list(self._current)

    def step(self, actions: np.ndarray):
        return self.step_info(actions)[:5]

    def step_info(self, actions: np.ndarray):
        """`step`, and the engines' batched info (`GymVecEnv.step_info`)."""
        obs, reward, terminated, truncated, episodes, info = self.envs.step_info(actions)
        changed = False
        for ep in episodes:
            ep.scenario = self._current[ep.env_index]
            self.scenario_draw.record(ep.scenario, ep.extras.get("win", 0.0))
            nxt = self.scenario_draw.draw(ep.env_index)
            changed |= nxt != ep.scenario
            self._current[ep.env_index] = nxt
        if changed:
            self._send()
        return obs, reward, terminated, truncated, episodes, info

    def _send(self) -> None:
        if self.several:
            self.envs.env.call("set_next_scenario", self._current)

    def close(self) -> None:
        self.envs.close()

    def render_fps(self) -> int:
        return self.envs.render_fps()

    def render_first(self) -> np.ndarray | None:
        return self.envs.render_first()


# ---------------------------------------------------------------- dispatch

def make_football_vector_env(cfg: EnvConfig, n: int, seed: int, mode: str, backend: str,
                             render: bool):
    """Football envs for `make_vector_env` (mode changes nothing: football has no lives and
    no reward clipping; metrics always use the raw scoring reward)."""
    scenarios = scenarios_of(cfg.id)
    if cfg.hide_obs:
        raise EnvError("env.hide_obs is not supported for football envs")
    if backend == "envpool" and not render:
        if cfg.representation != "extracted":
            raise EnvError(f"EnvPool's football engine only gives the minimap: set "
                           f"env.representation=extracted (got {cfg.representation}), or "
                           f"env.backend=gfootball for the official engine")
        return FootballEnvPoolVecEnv(scenarios, cfg, n, seed)
    if backend not in ("envpool", "gfootball", "sync", "async"):
        raise EnvError(f"env.backend={backend} does not run football; use envpool or gfootball")
    # Official engine. A video of an EnvPool-trained agent shows it the same minimap.
    representation = "extracted" if backend == "envpool" else cfg.representation
    asynchronous = not render and (backend == "async" or (backend == "gfootball" and n > 1))
    if representation.startswith("pixels") and n > 1 and not asynchronous:
        raise EnvError(f"env.representation={representation} renders frames, and the engine "
                       f"renders one env per process: use env.backend=gfootball or async")
    import_gfootball()  # fail here, in this process, with the install hint
    fns = [partial(make_gfootball_env, scenarios[0], cfg, representation, render and i == 0, i)
           for i in range(n)]
    envs = GymVecEnv(fns, asynchronous=asynchronous, step_timeout=cfg.step_timeout,
                     env_id=cfg.id)
    return GFootballVecEnv(envs, scenarios, cfg, seed)
