"""Gymnasium wrappers for the DeepMind Atari preprocessing (the reference `sync`/`async` path).

Order, from the raw ALE env (frameskip=1) up, in `make_atari_env`:

    raw ALE env -> NoopReset -> SkipMaxPool -> [TimeLimit] -> RecordEpisodeStatistics
    -> [EpisodicLife] -> [FireReset] -> CropResize -> FrameStack -> [ClipReward]

Episode statistics sit below everything that changes rewards or episode ends, so they
report the raw game score over all lives; their lengths count agent steps (decisions).
"""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np


class NoopReset(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """At reset, play a random number (1..noop_max) of raw-frame no-ops: random starts."""

    def __init__(self, env: gym.Env, noop_max: int = 30):
        gym.utils.RecordConstructorArgs.__init__(self, noop_max=noop_max)
        super().__init__(env)
        self.noop_max = noop_max

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for _ in range(int(self.np_random.integers(1, self.noop_max + 1))):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class SkipMaxPool(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Repeat the action `skip` raw frames, sum the rewards, and return the pixel-wise max
    of the last two frames (Atari sprites flicker between frames)."""

    def __init__(self, env: gym.Env, skip: int = 4):
        gym.utils.RecordConstructorArgs.__init__(self, skip=skip)
        super().__init__(env)
        self.skip = skip
        self._frames = np.zeros((2, *env.observation_space.shape), env.observation_space.dtype)

    def step(self, action):
        total = 0.0
        for i in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if i >= self.skip - 2:
                self._frames[i - (self.skip - 2)] = obs
            if terminated or truncated:
                break
        if self.skip >= 2 and i == self.skip - 1:
            obs = np.maximum(self._frames[0], self._frames[1])
        return obs, total, terminated, truncated, info


class EpisodicLife(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A lost life ends the (training) episode; the game itself only resets when it is over.

    The reset after a lost life plays no frame: it returns the last observation. A reset
    that asks for a seed or options always starts a new game, so that `reset(seed=s)` is
    reproducible whatever state the previous game was in.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.ale = env.unwrapped.ale
        self.lives = 0
        self.game_over = True
        self._last_obs = None

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        self._last_obs = obs
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        new_game = kwargs.get("seed") is not None or kwargs.get("options") is not None
        if self.game_over or self._last_obs is None or new_game:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, info = self._last_obs, {}
        self.game_over = False
        self.lives = self.ale.lives()
        return obs, info


class FireReset(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Press FIRE (then UP) after every reset, for games that wait for it to start, and
    FIRE after a lost life when lives do not end the episode (evaluation): a greedy
    policy that never presses FIRE would otherwise wait until the game's time limit."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset()
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives and not (terminated or truncated):
            obs, extra, terminated, truncated, info = self.env.step(1)
            reward += extra
        self.lives = lives
        return obs, reward, terminated, truncated, info


def needs_fire(env: gym.Env) -> bool:
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


class CropResize(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Crop [top, bottom, left, right] pixels, resize to (height, width) with area
    interpolation, and lay out channel-first uint8 [C, H, W] (C=1 gray, 3 RGB)."""

    def __init__(self, env: gym.Env, size: tuple[int, int], crop: tuple[int, ...] = ()):
        gym.utils.RecordConstructorArgs.__init__(self, size=size, crop=crop)
        super().__init__(env)
        shape = env.observation_space.shape
        h, w = shape[:2]
        top, bottom, left, right = (int(v) for v in (crop or (0, 0, 0, 0)))
        if top + bottom >= h or left + right >= w or min(top, bottom, left, right) < 0:
            raise ValueError(f"env.crop {list(crop)} leaves nothing of a {h}x{w} frame")
        self.rows = slice(top, h - bottom)
        self.cols = slice(left, w - right)
        self.size = (int(size[0]), int(size[1]))
        self.channels = 1 if len(shape) == 2 else shape[2]
        self.observation_space = gym.spaces.Box(0, 255, (self.channels, *self.size), np.uint8)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        frame = obs[self.rows, self.cols]
        if frame.shape[:2] != self.size:
            frame = cv2.resize(frame, self.size[::-1], interpolation=cv2.INTER_AREA)
        if self.channels == 1:
            return frame[None]
        return np.ascontiguousarray(frame.transpose(2, 0, 1))


class FrameStack(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Stack the last `k` frames along the channel axis: [k*C, H, W], oldest first; at
    reset the stack is filled with the first frame."""

    def __init__(self, env: gym.Env, k: int):
        gym.utils.RecordConstructorArgs.__init__(self, k=k)
        super().__init__(env)
        c, h, w = env.observation_space.shape
        self.c = c
        self._stack = np.zeros((k * c, h, w), np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, self._stack.shape, np.uint8)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._stack[:] = np.tile(obs, (len(self._stack) // self.c, 1, 1))
        return self._stack.copy(), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._stack[:-self.c] = self._stack[self.c:]
        self._stack[-self.c:] = obs
        return self._stack.copy(), reward, terminated, truncated, info


class ClipReward(gym.RewardWrapper, gym.utils.RecordConstructorArgs):
    """Training rewards in {-1, 0, +1} (the sign of the game reward)."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def reward(self, reward):
        return float(np.sign(reward))
