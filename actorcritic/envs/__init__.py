"""Environment construction: `make_vector_env` picks the family and backend from the config."""

from __future__ import annotations

import difflib
import importlib
from functools import partial

import gymnasium as gym

from actorcritic.config import EnvConfig
from actorcritic.envs.factory import env_factory, factory_backend, make_factory_env
from actorcritic.envs.football_scenarios import is_football
from actorcritic.envs.mujoco_gl import prepare_rendering
from actorcritic.envs.vector import EnvPoolVecEnv, Episode, GymVecEnv, VecEnv
from actorcritic.envs.wrappers import HideObservation
from actorcritic.errors import EnvError
from actorcritic.extras import dependency_error, env_family, require

__all__ = ["Episode", "VecEnv", "make_vector_env", "is_atari", "is_football", "spaces_for"]


def is_atari(env_id: str) -> bool:
    from actorcritic.envs.atari import is_atari_id

    return is_atari_id(env_id)


def _gym_known(env_id: str) -> bool:
    """Whether Gymnasium knows the id. `my_module:MyEnv-v0` first imports my_module (which
    registers MyEnv-v0), as gym.make does: how a user's own env reaches the CLI."""
    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        try:
            importlib.import_module(module)
        except Exception as exc:  # the user's module: report whatever it raised
            raise EnvError(f"env id '{module}:{env_id}': module '{module}' could not be "
                           f"imported: {type(exc).__name__}: {exc}") from None
    return env_id in gym.registry


def _envpool_known(env_id: str) -> bool:
    # EnvPool ships Box2D's LunarLander: the Box2D extra brings it for those presets.
    extra = "box2d" if env_family(env_id) == "box2d" else "envpool"
    envpool = require("envpool", extra, f"env '{env_id}' on env.backend=envpool",
                      alternative="set env.backend=sync")
    return env_id in envpool.list_all_envs()


def unknown_env(env_id: str) -> EnvError:
    names = list(gym.registry)
    try:
        import envpool

        names += envpool.list_all_envs()
    except ImportError:
        pass
    close = difflib.get_close_matches(env_id, list(dict.fromkeys(names)), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return EnvError(f"unknown env id '{env_id}'{hint} (set env.id to a registered Gymnasium "
                    f"or EnvPool id)")


def make_single_env(cfg: EnvConfig, render: bool = False) -> gym.Env:
    """One raw env with episode statistics on the raw rewards, plus the generic wrappers."""
    factory = env_factory(cfg.id)  # the user's own env factory (envs/factory.py)
    env = make_factory_env(factory, cfg, render) if factory else _make_gym_env(cfg, render)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if cfg.hide_obs:
        try:
            env = HideObservation(env, cfg.hide_obs)
        except ValueError as exc:
            raise EnvError(f"env '{cfg.id}': {exc}") from None
    return env


def _make_gym_env(cfg: EnvConfig, render: bool) -> gym.Env:
    kwargs = dict(cfg.kwargs)
    if cfg.max_episode_steps:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if render:
        kwargs["render_mode"] = "rgb_array"
        prepare_rendering(cfg.id)
    try:
        env = gym.make(cfg.id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:  # e.g. LunarLander without Box2D
        raise dependency_error(cfg.id, exc) from None
    except gym.error.Error as exc:
        if not _gym_known(cfg.id):
            raise unknown_env(cfg.id) from None
        raise EnvError(f"env '{cfg.id}' could not be made: {exc}") from None
    except TypeError as exc:
        raise EnvError(f"env '{cfg.id}' rejected env.kwargs {cfg.kwargs}: {exc}") from None
    return env


def _native_vector_env(cfg: EnvConfig, n: int) -> GymVecEnv:
    if not _gym_known(cfg.id):  # imports `module` of a `module:Env-v0` id
        raise unknown_env(cfg.id)
    name = cfg.id.split(":")[-1]
    if gym.spec(name).vector_entry_point is None:
        raise EnvError(f"env '{cfg.id}' has no vectorized implementation in Gymnasium "
                       f"(env.backend=vector); use env.backend=sync, async or envpool")
    if cfg.hide_obs:
        raise EnvError("env.hide_obs needs env.backend=sync or async")
    kwargs = dict(cfg.kwargs)
    if cfg.max_episode_steps:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    try:
        return GymVecEnv.native(name, n, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise dependency_error(cfg.id, exc) from None
    except (gym.error.Error, TypeError, ValueError) as exc:
        raise EnvError(f"env '{cfg.id}' (env.backend=vector) could not be made: {exc}") from None


def resolve_backend(cfg: EnvConfig, mode: str) -> str:
    if mode == "train" or cfg.eval_backend != "auto":
        return cfg.backend if mode == "train" else cfg.eval_backend
    if is_atari(cfg.id):
        return "sync"  # the Gymnasium reference path: full games, sticky actions, video
    if is_football(cfg.id):
        return cfg.backend
    return "sync" if _gym_known(cfg.id) else cfg.backend


def make_vector_env(cfg: EnvConfig, num_envs: int | None = None, seed: int = 0,
                    mode: str = "train", render: bool = False) -> VecEnv:
    """Build `num_envs` (default `cfg.num_envs`) envs of `cfg.id` for training or evaluation.

    mode="eval" gives the raw task: for Atari no episodic life and no reward clipping.
    The returned env is reset with `seed` (env i gets seed + i). Football with
    env.players = K > 1 gives n games as n*K rows (`num_envs` of the result: n*K).
    """
    n = num_envs or cfg.num_envs
    if cfg.players != 1 and not is_football(cfg.id):
        raise EnvError(f"env.players={cfg.players} is for football envs; env.id is {cfg.id}")
    if env_factory(cfg.id) is not None:  # the user's own env factory (envs/factory.py)
        return _gym_vector_env(cfg, n, factory_backend(cfg, mode, render), render)
    backend = resolve_backend(cfg, mode)
    if render and backend != "sync":
        backend = "sync"
    if is_atari(cfg.id):
        from actorcritic.envs.atari import make_atari_vector_env

        return make_atari_vector_env(cfg, n, seed, mode, backend, render)
    if is_football(cfg.id):
        if cfg.players != 1:  # several players under one policy, one row each
            from actorcritic.envs.football_players import make_players_vector_env

            return make_players_vector_env(cfg, n, seed, mode, backend, render)
        from actorcritic.envs.football import make_football_vector_env

        return make_football_vector_env(cfg, n, seed, mode, backend, render)
    if backend == "envpool":
        if not _envpool_known(cfg.id):
            if _gym_known(cfg.id):
                raise EnvError(f"env '{cfg.id}' is not in EnvPool; use env.backend=sync or "
                               f"async")
            raise unknown_env(cfg.id)
        if cfg.hide_obs:
            raise EnvError("env.hide_obs needs env.backend=sync or async")
        kwargs = dict(cfg.kwargs)
        if cfg.max_episode_steps:
            kwargs["max_episode_steps"] = cfg.max_episode_steps
        venv = EnvPoolVecEnv(cfg.id, n, seed, **kwargs)
    elif backend in ("sync", "async"):
        if not _gym_known(cfg.id):
            raise unknown_env(cfg.id)
        venv = _gym_vector_env(cfg, n, backend, render)
    elif backend == "vector":
        venv = _native_vector_env(cfg, n)
    else:
        raise EnvError(f"env.backend={backend} is only for Atari envs")
    return venv


def _gym_vector_env(cfg: EnvConfig, n: int, backend: str, render: bool) -> GymVecEnv:
    """`n` envs of make_single_env on the sync or async backend."""
    make_single_env(cfg).close()  # fail early, in this process, with a clear error
    fns = [partial(make_single_env, cfg, render) for _ in range(n)]
    return GymVecEnv(fns, asynchronous=backend == "async", step_timeout=cfg.step_timeout,
                     env_id=cfg.id)


def spaces_for(cfg) -> tuple[gym.Space, gym.Space]:
    """Observation and action spaces of the configured env (`cfg`: a Config; one env,
    made, checked when `env.check` is on, and closed)."""
    envs = make_vector_env(cfg.env, num_envs=1, seed=cfg.run.seed, mode="eval")
    try:
        if cfg.env.check:
            from actorcritic.envs.check import check_vector_env

            check_vector_env(envs, cfg.env.id)
        return envs.single_observation_space, envs.single_action_space
    finally:
        envs.close()
