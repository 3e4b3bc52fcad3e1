"""Start-up check that an environment speaks the API the learner relies on.

Every violation names the env, the field and what was expected (env.check=false skips it).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from actorcritic.errors import EnvError

OBS_DTYPES = (np.uint8, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64)


def check_spaces(obs_space: gym.Space, action_space: gym.Space, env_id: str) -> None:
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvError(f"env '{env_id}': observation_space is {type(obs_space).__name__}; "
                       f"expected a Box (vector or image)")
    if obs_space.dtype not in OBS_DTYPES:
        raise EnvError(f"env '{env_id}': observation dtype {obs_space.dtype} is not supported; "
                       f"expected uint8 images or float vectors")
    if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete,
                                     gym.spaces.Box)):
        raise EnvError(f"env '{env_id}': action_space {type(action_space).__name__} is not "
                       f"supported; expected Discrete, MultiDiscrete or Box")
    if isinstance(action_space, gym.spaces.Box) and not (
            np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
        raise EnvError(f"env '{env_id}': Box action_space needs finite low/high bounds")


def check_env(env: gym.Env, env_id: str) -> None:
    """One reset and one step of the raw env (below every wrapper): the Gymnasium API.

    Done below the wrappers so that an old-Gym-API env (reset returning only the
    observation, step returning 4 values), a float64 observation in a float32 space (which
    vector envs silently cast) or a reward that is not a number is named as such instead of
    surfacing as an unpacking error deep inside a wrapper.
    """
    raw = env.unwrapped
    space = raw.observation_space
    try:
        result = raw.reset(seed=0)
    except Exception as exc:  # the user's env code: report, whatever it raised
        raise EnvError(f"env '{env_id}': reset() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(result, tuple) or len(result) != 2 or not isinstance(result[1], dict):
        what = f"a {len(result)}-tuple" if isinstance(result, tuple) else type(result).__name__
        raise EnvError(f"env '{env_id}': reset() returned {what}; expected a tuple "
                       f"(observation, info dict) (the old Gym API returned only the "
                       f"observation)")
    if isinstance(space, gym.spaces.Box):
        _check_obs(np.asarray(result[0])[None], space, 1, env_id, "reset()")
    try:
        result = raw.step(raw.action_space.sample())
    except Exception as exc:
        raise EnvError(f"env '{env_id}': step() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(result, tuple) or len(result) != 5:
        what = f"{len(result)} values" if isinstance(result, tuple) else type(result).__name__
        raise EnvError(f"env '{env_id}': step() returned {what}; expected 5 (observation, "
                       f"reward, terminated, truncated, info) (the old Gym API returned 4 "
                       f"with one 'done' flag)")
    obs, reward, terminated, truncated, info = result
    if isinstance(space, gym.spaces.Box):
        _check_obs(np.asarray(obs)[None], space, 1, env_id, "step()")
    value = np.asarray(reward) if isinstance(reward, (np.ndarray, np.generic)) else reward
    if isinstance(value, np.ndarray):
        ok = value.shape == () and value.dtype.kind in "fiu"
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise EnvError(f"env '{env_id}': step() reward is {reward!r} "
                       f"({type(reward).__name__}); expected a finite float")
    if not np.isfinite(float(value)):
        raise EnvError(f"env '{env_id}': step() reward is {float(value)}; expected a finite "
                       f"float")
    for name, flag in (("terminated", terminated), ("truncated", truncated)):
        if not isinstance(flag, (bool, np.bool_)):
            raise EnvError(f"env '{env_id}': step() {name} is {flag!r} "
                           f"({type(flag).__name__}); expected a bool")
    if not isinstance(info, dict):
        raise EnvError(f"env '{env_id}': step() info is {type(info).__name__}; expected a dict")


def check_vector_env(envs, env_id: str) -> None:
    """Check spaces, the raw env's API, then one vector reset and step: shapes, dtypes and a
    finite float reward."""
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, action_space, env_id)
    sub_envs = getattr(getattr(envs, "env", None), "envs", None)  # a sync GymVecEnv
    if sub_envs:
        check_env(sub_envs[0], env_id)
    n = envs.num_envs
    try:
        obs = envs.reset(seed=0)
    except EnvError:
        raise
    except Exception as exc:  # the user's env code: report, whatever it raised
        raise EnvError(f"env '{env_id}': reset() failed: {type(exc).__name__}: {exc}") from None
    _check_obs(obs, obs_space, n, env_id, "reset()")
    actions = np.stack([action_space.sample() for _ in range(n)])
    try:
        result = envs.step(actions)
    except EnvError:
        raise
    except Exception as exc:
        raise EnvError(f"env '{env_id}': step() failed: {type(exc).__name__}: {exc}") from None
    obs, reward, terminated, truncated, _ = result
    _check_obs(obs, obs_space, n, env_id, "step()")
    reward = np.asarray(reward)
    if reward.shape != (n,) or reward.dtype.kind not in "fiu":
        raise EnvError(f"env '{env_id}': step() reward has shape {reward.shape} dtype "
                       f"{reward.dtype}; expected one float per env")
    if not np.isfinite(reward).all():
        raise EnvError(f"env '{env_id}': step() returned a non-finite reward {reward}")
    for name, flags in (("terminated", terminated), ("truncated", truncated)):
        if np.asarray(flags).dtype != np.bool_:
            raise EnvError(f"env '{env_id}': step() {name} has dtype "
                           f"{np.asarray(flags).dtype}; expected bool")


def _check_obs(obs, space: gym.spaces.Box, n: int, env_id: str, where: str) -> None:
    obs = np.asarray(obs)
    if obs.shape != (n, *space.shape):
        raise EnvError(f"env '{env_id}': {where} observation has shape {obs.shape[1:]}; "
                       f"observation_space says {space.shape}")
    if obs.dtype != space.dtype:
        raise EnvError(f"env '{env_id}': {where} observation dtype {obs.dtype}; "
                       f"observation_space says {space.dtype}")
    if obs.dtype.kind == "f" and not np.isfinite(obs).all():
        raise EnvError(f"env '{env_id}': {where} returned a non-finite observation")
