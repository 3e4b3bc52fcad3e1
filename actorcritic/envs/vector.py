"""Vector environments behind one small interface.

Every backend follows Gymnasium's *next-step* autoreset: the step that ends an episode
returns that episode's final observation (with terminated or truncated set); the next call
to `step` resets that env, ignores its action and returns the first observation of the new
episode with reward 0. The rollout marks such reset steps invalid so no transition across
an episode boundary is ever learned from, and a truncated episode bootstraps from the value
of its final observation, which is simply the next observation in the buffer.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from actorcritic.errors import EnvError


@dataclass
class Episode:
    """One finished episode, measured on the raw environment (raw score, all lives)."""

    env_index: int
    ret: float
    length: int
    extras: dict[str, float] = field(default_factory=dict)
    scenario: str = ""  # the task it played, where the env has several (football)


class VecEnv(Protocol):
    num_envs: int
    single_observation_space: gym.Space
    single_action_space: gym.Space

    def reset(self, seed: int | None = None) -> np.ndarray: ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                 np.ndarray, list[Episode]]: ...

    def close(self) -> None: ...


# Extra per-episode values an env may put in `info["episode_extras"]` (football: score, win).
EXTRAS_KEY = "episode_extras"


class GymVecEnv:
    """Gymnasium SyncVectorEnv / AsyncVectorEnv with next-step autoreset.

    Episode statistics come from a `RecordEpisodeStatistics` wrapper that each env factory
    places directly on the raw env, so they report the raw score whatever the training
    wrappers above it do to rewards and episode ends.
    """

    def __init__(self, env_fns: list, asynchronous: bool = False, step_timeout: float = 60.0,
                 env_id: str = ""):
        mode = gym.vector.AutoresetMode.NEXT_STEP
        self.env_id = env_id
        self.asynchronous = asynchronous
        self.step_timeout = step_timeout
        if asynchronous:
            # Workers ignore Ctrl-C: the main process decides when and how to stop them.
            # They die on SIGTERM (close(terminate=True) sends it), not run the training
            # session's graceful-stop handler they would otherwise inherit through fork.
            import signal
            previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
                        signal.SIGTERM: signal.signal(signal.SIGTERM, signal.SIG_DFL)}
            # Collect garbage before forking: an unreachable EnvPool object collected in a
            # forked worker would join threads that exist only in this process (SIGSEGV).
            import gc
            gc.collect()
            try:
                self.env = gym.vector.AsyncVectorEnv(env_fns, autoreset_mode=mode,
                                                     context="fork")
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        else:
            self.env = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=mode)
        self._spaces_from_env()

    @classmethod
    def native(cls, env_id: str, num_envs: int, **kwargs: Any) -> GymVecEnv:
        """Gymnasium's own vectorized implementation of `env_id` (CartPole-v1 has one): one
        NumPy computation over all envs per step instead of a Python step per env. It also
        resets on the step after an episode end."""
        env = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", **kwargs)
        if env.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.NEXT_STEP:
            env.close()
            raise ValueError(f"{env_id}'s vector implementation does not use next-step autoreset")
        self = cls.__new__(cls)
        self.env_id, self.asynchronous, self.step_timeout = env_id, False, 0.0
        self.env = gym.wrappers.vector.RecordEpisodeStatistics(env)
        self._spaces_from_env()
        return self

    def _spaces_from_env(self) -> None:
        self.num_envs = self.env.num_envs
        self.single_observation_space = self.env.single_observation_space
        self.single_action_space = self.env.single_action_space

    def reset(self, seed: int | None = None) -> np.ndarray:
        if self.asynchronous:
            self.env.reset_async(seed=seed)
            obs, _ = self._wait(self.env.reset_wait, "reset")
            return obs
        try:
            obs, _ = self.env.reset(seed=seed)
        except Exception as exc:
            raise self._sync_error(exc, "reset") from None
        return obs

    def step(self, actions: np.ndarray):
        return self.step_info(actions)[:5]

    def step_info(self, actions: np.ndarray):
        """`step`, and Gymnasium's batched info dict (a key's values [num_envs, ...] with
        its mask `_key`: which envs gave it; a reset step gives its reset info)."""
        if self.asynchronous:
            self.env.step_async(actions)
            obs, reward, terminated, truncated, info = self._wait(self.env.step_wait, "step")
        else:
            try:
                obs, reward, terminated, truncated, info = self.env.step(actions)
            except Exception as exc:
                raise self._sync_error(exc, "step") from None
        episodes = _episodes_from_info(info) if "episode" in info else []
        return (obs, reward.astype(np.float32, copy=False), terminated, truncated, episodes,
                info)

    def _wait(self, wait, what: str):
        """Wait for every worker's answer (env.step_timeout); a worker's exception or
        silence becomes one EnvError naming the worker, the exception and where it was
        raised. Gymnasium reports a worker's traceback as warnings: they are caught here
        (the message keeps its last frame) and other warnings are shown as usual."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                answered = answered_within(self.env.parent_pipes, self.step_timeout)
                return wait(timeout=None if answered else 0)
            except mp.TimeoutError:
                silent = [i for i, pipe in enumerate(self.env.parent_pipes)
                          if pipe is not None and not pipe.poll()]
                raise EnvError(f"env '{self.env_id}' {_workers(silent)} did not answer "
                               f"{what}() within {self.step_timeout:g} s (env.step_timeout); "
                               f"the workers were stopped") from None
            except EnvError:
                raise
            except Exception as exc:
                failed = [i for i, pipe in enumerate(self.env.parent_pipes) if pipe is None]
                trace = "\n".join(str(w.message) for w in caught if "Traceback" in str(w.message))
                frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', trace)
                where = f" (at {frames[-1][0]}:{frames[-1][1]} in {frames[-1][2]})" if frames \
                    else ""
                raise EnvError(f"env '{self.env_id}' {_workers(failed)} raised "
                               f"{type(exc).__name__} in {what}(): {exc}{where}") from None
            finally:
                for w in caught:
                    if "Traceback" not in str(w.message) and "ERROR: " not in str(w.message):
                        warnings.showwarning(w.message, w.category, w.filename, w.lineno)

    def _sync_error(self, exc: Exception, what: str) -> Exception:
        """An exception from a sync env's reset/step as one EnvError (env index, location)."""
        if isinstance(exc, EnvError):
            return exc
        index, frame_info = None, None
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            if frame.f_code.co_filename.endswith("sync_vector_env.py") and \
                    isinstance(frame.f_locals.get("i"), int):
                index = frame.f_locals["i"]
            frame_info = (frame.f_code.co_filename, lineno, frame.f_code.co_name)
        who = f"env '{self.env_id}'" + (f" index {index}" if index is not None else "")
        where = f" (at {frame_info[0]}:{frame_info[1]} in {frame_info[2]})" if frame_info \
            else ""
        return EnvError(f"{who} raised {type(exc).__name__} in {what}(): {exc}{where}")

    def retire(self, index: int) -> bool:
        """Stop stepping env `index` for the rest of this vector env's life (an evaluation
        that has all of this env's games): it repeats its last observation with no reward
        and never ends, and the others play on exactly as before. Only the synchronous
        vector env can; False elsewhere (the env is stepped as before)."""
        if self.asynchronous or not isinstance(self.env, gym.vector.SyncVectorEnv):
            return False
        env = self.env.envs[index]
        if not isinstance(env, _Retired):
            self.env.envs[index] = _Retired(env, self.env._env_obs[index])
        return True

    def close(self) -> None:
        if self.asynchronous:
            self.env.close(terminate=True)
        else:
            self.env.close()

    def render_fps(self) -> int:
        """Frames per second the env renders at (sync backend), 30 when it does not say."""
        return int(self.env.envs[0].metadata.get("render_fps") or 30)

    def render_first(self) -> np.ndarray | None:
        """RGB frame of env 0 (sync backend with render_mode='rgb_array')."""
        return self.env.envs[0].render()


class _Retired:
    """Stands in a SyncVectorEnv for a retired env (GymVecEnv.retire): its last observation
    again, at no emulation cost; the env itself is closed with the vector env."""

    def __init__(self, env: gym.Env, obs: Any):
        self.env, self.obs = env, obs
        self.metadata = env.metadata

    def step(self, action):
        return self.obs, 0.0, False, False, {}

    def reset(self, **kwargs):
        return self.obs, {}

    def render(self):
        return self.env.render()

    def close(self) -> None:
        self.env.close()


# The workers are polled in slices of this many seconds (see answered_within).
POLL_SLICE = 1.0


def answered_within(pipes: list, timeout: float,
                    alive: Callable[[], bool] | None = None) -> bool:
    """Whether every worker's pipe has its answer within `timeout` seconds of this process
    running (False as soon as `alive()`, asked between slices, says the worker is gone).
    Time in which this process was stopped (Ctrl-Z, SIGSTOP, a debugger) does not
    count; gymnasium's own timeout counts it, so a run suspended for a minute failed on
    `fg`. The wait goes in slices of POLL_SLICE seconds, and a slice counts for no more
    than it asked for: a poll that returns later than that was not running."""
    waited = 0.0
    for pipe in pipes:
        if pipe is None or pipe.closed:
            return False
        while not pipe.poll(0):
            if waited >= timeout or (alive is not None and not alive()):
                return False
            asked = min(POLL_SLICE, timeout - waited)
            start = time.monotonic()
            pipe.poll(asked)
            waited += min(time.monotonic() - start, asked)
    return True


def _workers(indices: list[int]) -> str:
    if not indices:
        return "a worker"
    return ("worker " if len(indices) == 1 else "workers ") + ", ".join(map(str, indices))


def _episodes_from_info(info: dict[str, Any]) -> list[Episode]:
    done = np.flatnonzero(info["_episode"])
    ep = info["episode"]
    extras = info.get(EXTRAS_KEY)
    out = []
    for i in done:
        extra = {}
        if extras is not None:
            extra = {k: float(v[i]) for k, v in extras.items() if not k.startswith("_")}
        out.append(Episode(int(i), float(ep["r"][i]), int(ep["l"][i]), extra))
    return out


class EnvPoolVecEnv:
    """EnvPool's C++ thread pool (sync mode, deterministic per seed).

    EnvPool also resets on the step after an episode end, like Gymnasium's next-step mode.
    Episode statistics are accumulated here from the rewards EnvPool returns; env families
    whose training rewards are not the raw score (Atari) pass `raw_reward_key` and
    `game_over_key` to read the raw ones from `info`.
    """

    def __init__(self, task_id: str, num_envs: int, seed: int, raw_reward_key: str | None = None,
                 game_over_key: str | None = None, **kwargs: Any):
        import warnings

        import envpool

        with warnings.catch_warnings():  # EnvPool's float64 Box bounds warn on every make
            warnings.simplefilter("ignore", UserWarning)
            self.env = envpool.make_gymnasium(task_id, num_envs=num_envs, seed=seed, **kwargs)
            self.single_observation_space = self.env.observation_space
            self.single_action_space = self.env.action_space
        self.num_envs = num_envs
        self.raw_reward_key = raw_reward_key
        self.game_over_key = game_over_key
        self._returns = np.zeros(num_envs, np.float64)
        self._lengths = np.zeros(num_envs, np.int64)
        self._reset_next = np.zeros(num_envs, bool)
        self._stepped = np.ones(num_envs, bool)  # False: retired (see retire)
        self._obs: np.ndarray | None = None

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.env.reset()
        self._returns[:] = 0
        self._lengths[:] = 0
        self._reset_next[:] = False
        self._stepped[:] = True
        self._obs = obs
        return obs

    def retire(self, index: int) -> bool:
        """Stop stepping env `index` (EnvPool steps a subset of its envs by id): it repeats
        its last observation with no reward and never ends; the others play on exactly as
        before, since each env has its own random stream."""
        self._stepped[index] = False
        return True

    def step(self, actions: np.ndarray):
        if self._stepped.all():
            obs, reward, terminated, truncated, info = self.env.step(actions)
        else:
            obs, reward, terminated, truncated, info = self._step_some(actions)
        self._obs = obs
        raw = info[self.raw_reward_key] if self.raw_reward_key else reward
        live = ~self._reset_next
        self._returns[live] += raw[live]
        self._lengths[live] += 1
        done = terminated | truncated
        game_over = done & info[self.game_over_key] if self.game_over_key else done
        if self.game_over_key:
            game_over = game_over | (done & truncated)
        episodes = []
        for i in np.flatnonzero(game_over & live):
            episodes.append(Episode(int(i), float(self._returns[i]), int(self._lengths[i])))
            self._returns[i] = 0
            self._lengths[i] = 0
        self._reset_next = done & live
        return obs, reward.astype(np.float32, copy=False), terminated, truncated, episodes

    def _step_some(self, actions: np.ndarray):
        """Step the envs not retired; the retired ones' rows repeat their last observation
        with zeros and False (all as full-size arrays, as a whole step gives them)."""
        ids = np.flatnonzero(self._stepped)
        obs_some, reward_some, term_some, trunc_some, info_some = self.env.step(
            actions[ids], ids)
        rows = np.asarray(info_some["env_id"])
        obs = self._obs.copy()
        obs[rows] = obs_some
        reward = np.zeros(self.num_envs, reward_some.dtype)
        reward[rows] = reward_some
        terminated = np.zeros(self.num_envs, bool)
        terminated[rows] = term_some
        truncated = np.zeros(self.num_envs, bool)
        truncated[rows] = trunc_some
        info = {}
        for key in (self.raw_reward_key, self.game_over_key):
            if key:
                value = np.zeros(self.num_envs, np.asarray(info_some[key]).dtype)
                value[rows] = info_some[key]
                info[key] = value
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.env.close()
