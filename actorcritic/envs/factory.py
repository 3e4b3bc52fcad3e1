"""The user's own environment: a factory (a function or a `gymnasium.Env` class; called
with `env.kwargs`, it returns a Gymnasium env) named in `env.id` by its import path,
`module:qualname`.

`train(env_fn=make_env)` sets env.id to the path of `make_env` and remembers the function
in this process (importpath.py), so a lambda trains as well. The envs are then built as
those of a Gymnasium id on the sync and async backends: episode statistics on the raw
rewards, a TimeLimit for env.max_episode_steps, env.hide_obs. `module:EnvId-v0` keeps
its meaning (import module, which registers EnvId-v0, then make that id).
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym

from actorcritic.config import EnvConfig
from actorcritic.errors import EnvError
from actorcritic.importpath import import_object, is_import_path, remembered


def env_factory(env_id: str) -> Callable[..., gym.Env] | None:
    """The factory `env_id` names, or None for a Gymnasium or EnvPool id."""
    if ":" not in env_id:
        return None
    obj = remembered(env_id)
    if obj is not None:
        return obj
    if not is_import_path(env_id):  # module:EnvId-v0
        return None
    name = env_id.split(":", 1)[1]
    try:
        obj, error = import_object(env_id), None
    except ImportError as exc:
        error = exc
    if name in gym.registry:  # module:EnvId, a registered id without a version
        return None
    if error is not None:
        raise EnvError(f"env factory '{env_id}' cannot be made: {error}; pass the factory "
                       f"itself (train(..., env_fn=...) or actorcritic.load(..., env_fn=...))")
    if not callable(obj):
        raise EnvError(f"env.id '{env_id}' names a {type(obj).__name__}, not an env factory "
                       f"(a function or class that returns a gymnasium.Env)")
    return obj


def is_env_class(obj) -> bool:
    return isinstance(obj, type) and issubclass(obj, gym.Env)


def make_factory_env(factory: Callable[..., gym.Env], cfg: EnvConfig,
                     render: bool = False) -> gym.Env:
    """One env from the factory, called with env.kwargs (and render_mode='rgb_array' for
    video, Gymnasium's convention), time-limited by env.max_episode_steps."""
    kwargs = dict(cfg.kwargs)
    if render:
        kwargs["render_mode"] = "rgb_array"
    try:
        env = factory(**kwargs)
    except Exception as exc:  # the user's code: one line, the traceback kept as the cause
        called = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise EnvError(f"env factory '{cfg.id}' failed when called as ({called}): "
                       f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(env, gym.Env):
        raise EnvError(f"env factory '{cfg.id}' returned {type(env).__name__}, not a "
                       f"gymnasium.Env")
    if cfg.max_episode_steps:
        env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
    return env


def factory_backend(cfg: EnvConfig, mode: str, render: bool) -> str:
    """The vector backend for a factory: sync or async (the backends that call it)."""
    key = "backend" if mode == "train" else "eval_backend"
    backend = getattr(cfg, key)
    if backend == "auto" or render:
        return "sync"
    if backend not in ("sync", "async"):
        raise EnvError(f"env '{cfg.id}' is an env factory: env.{key}={backend} is for "
                       f"Gymnasium and EnvPool ids; use sync or async")
    return backend
