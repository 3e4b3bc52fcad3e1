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


def check_vector_env(envs, env_id: str) -> None:
    """Check spaces, then one reset and one step: shapes, dtypes and a finite float reward."""
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, action_space, env_id)
    n = envs.num_envs
    try:
        obs = envs.reset(seed=0)
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
