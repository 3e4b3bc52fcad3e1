"""The official football checkpoint reward, computed from what EnvPool's engine exposes.

The official engine's `CheckpointRewardWrapper` (gfootball/env/wrappers.py) pays, per episode,
+0.1 the first time the left team's ball carrier gets within each of 10 distances of the
opponent goal, and on a goal scored (scoring reward +1) everything not yet collected at once:

    checkpoint k (k = 0..9) is collected on a step where
        ball_owned_team == 0 and ball_owned_player == active and d <= 0.99 - 0.8 / 9 * k,
        d = sqrt((ball_x - 1)^2 + ball_y^2)                       (the goal is at x = 1, y = 0)

EnvPool's engine returns the scoring reward, the super minimap and `info["ball_owned_team"]` /
`info["ball_owned_player"]`, but neither the ball coordinates nor which player is active.
`CheckpointReward` recovers both from the minimap:

- ball position: the centroid of the lit pixels of the ball channel (gfootball marks one
  pixel), mapped back to the pitch through the inverse of gfootball's minimap mapping
  (`pixel_to_pitch`, the pixel's centre). One pixel spans 2/96 ~ 0.021 in x and
  0.89/72 ~ 0.012 in y, so the distance is off by at most ~0.012 (half the pixel's
  diagonal). Within that of a threshold the estimate can put the ball on the wrong side:
  that checkpoint is then paid early or late (usually by a step or two), or, if the
  episode ends in between, once too often or not at all.
- "the active player has the ball": `ball_owned_team == 0` and the active-player pixel is
  within `active_radius` (2) pixels (Chebyshev) of the ball pixel. `ball_owned_player` is
  not used: the minimap does not say which left-team pixel is which player index. Measured
  on the official engine (~8,300 left-possession steps, six academy scenarios): when the
  owner is the active player the two pixels are 0 or 1 apart, 2 on 8 steps, never more;
  the 18 steps where a teammate owns the ball mostly have them 3 or more apart.

Measured against the official engine on the same trajectories (500 episodes of five academy
scenarios; tests/test_football_checkpoints.py has the table and the command): the carrier
condition agrees with the official one on 99.99% of steps; the reward agrees on 98.3% of
steps and the episode total on 94.8% of episodes (92-100% by scenario). The rest are
checkpoints paid a step or two early or late (the pixel straddles a threshold): an episode
total is never off by more than one checkpoint (0.1), and over all 500 episodes the totals
sum to 331.1 against the official 332.3.

Episodes. `step` takes the envs' `done` flags of the step; an env's collected checkpoints are
forgotten when its episode ends, and the step after an end (the reset step of next-step
autoreset, whose observation is the new episode's first) pays nothing. The official wrapper
pays nothing on `reset()` either: a checkpoint already reached in the initial state is paid
on the first step.
"""

from __future__ import annotations

import numpy as np

# gfootball/env/observation_preprocessing.py: the super minimap.
SMM_HEIGHT, SMM_WIDTH = 72, 96
SMM_CHANNELS = 4  # left team, right team, ball, active player
BALL_CHANNEL, ACTIVE_CHANNEL = 2, 3
X_MIN, X_MAX = -1.0, 1.0
Y_MIN, Y_MAX = -1.0 / 2.25, 1.0 / 2.25

# gfootball/env/wrappers.py: CheckpointRewardWrapper.
NUM_CHECKPOINTS = 10
CHECKPOINT_REWARD = 0.1


def pitch_to_pixel(x, y):
    """gfootball's `mark_points`: pitch (x, y) -> minimap (column, row), as int arrays.

    `int()` truncates toward zero, then the index is clipped to the frame."""
    col = np.trunc((np.asarray(x, np.float64) - X_MIN) / (X_MAX - X_MIN) * SMM_WIDTH)
    row = np.trunc((np.asarray(y, np.float64) - Y_MIN) / (Y_MAX - Y_MIN) * SMM_HEIGHT)
    return (np.clip(col, 0, SMM_WIDTH - 1).astype(np.int64),
            np.clip(row, 0, SMM_HEIGHT - 1).astype(np.int64))


def pixel_to_pitch(col, row):
    """Inverse of `pitch_to_pixel`: the pitch coordinates of a pixel's centre (fractional
    column/row, such as a centroid, are mapped linearly)."""
    x = X_MIN + (np.asarray(col, np.float64) + 0.5) * (X_MAX - X_MIN) / SMM_WIDTH
    y = Y_MIN + (np.asarray(row, np.float64) + 0.5) * (Y_MAX - Y_MIN) / SMM_HEIGHT
    return x, y


def checkpoint_thresholds(num_checkpoints: int = NUM_CHECKPOINTS) -> np.ndarray:
    """Distances to the goal, decreasing, within which checkpoint k is collected."""
    if num_checkpoints == 1:
        return np.array([0.99 - 0.8])
    return np.array([0.99 - 0.8 / (num_checkpoints - 1) * k for k in range(num_checkpoints)])


def goal_distance(x, y):
    """Distance from (x, y) to the opponent goal's centre (1, 0)."""
    return np.sqrt((np.asarray(x, np.float64) - 1) ** 2 + np.asarray(y, np.float64) ** 2)


def checkpoints_within(d, thresholds: np.ndarray) -> np.ndarray:
    """How many checkpoints a carrier at distance `d` has reached: the number of thresholds
    >= d. (The official loop collects k = collected, collected+1, ... while d <= threshold_k;
    the thresholds decrease, so the count after it is max(collected, this).)"""
    d = np.asarray(d, np.float64)
    return (d[..., None] <= thresholds).sum(-1)


def _centroids(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per env [N, H, W]: (column, row, lit pixel count) of the lit pixels' centroid
    (column and row are NaN where nothing is lit)."""
    lit = channel > 0
    count = lit.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        row = lit.sum(2) @ np.arange(channel.shape[1]) / count
        col = lit.sum(1) @ np.arange(channel.shape[2]) / count
    return col, row, count


def minimap_channels(minimap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ball and active-player channels [N, 72, 96] of a batch of minimaps, channel-last
    [N, 72, 96, 4] (EnvPool's) or channel-first [N, 4, 72, 96] (`FootballEnvPoolVecEnv`'s);
    the two shapes cannot be confused."""
    minimap = np.asarray(minimap)
    if minimap.ndim == 4 and minimap.shape[1:] == (SMM_HEIGHT, SMM_WIDTH, SMM_CHANNELS):
        return minimap[..., BALL_CHANNEL], minimap[..., ACTIVE_CHANNEL]
    if minimap.ndim == 4 and minimap.shape[1:] == (SMM_CHANNELS, SMM_HEIGHT, SMM_WIDTH):
        return minimap[:, BALL_CHANNEL], minimap[:, ACTIVE_CHANNEL]
    raise ValueError(f"expected minimaps [N, 72, 96, 4] or [N, 4, 72, 96], got shape "
                     f"{minimap.shape}")


def ball_and_carrier(minimap: np.ndarray, ball_owned_team, active_radius: int = 2):
    """From a batch of minimaps and `ball_owned_team`: the ball's estimated pitch position
    (x [N], y [N]) and whether the left team's active player has the ball [N] (left team owns
    it and the active-player pixel is within `active_radius` pixels of the ball pixel)."""
    ball, active = minimap_channels(minimap)
    bcol, brow, bcount = _centroids(ball)
    acol, arow, acount = _centroids(active)
    x, y = pixel_to_pitch(bcol, brow)
    with np.errstate(invalid="ignore"):
        near = np.maximum(np.abs(bcol - acol), np.abs(brow - arow)) <= active_radius
    carrier = (np.asarray(ball_owned_team) == 0) & near & (bcount > 0) & (acount > 0)
    return x, y, carrier


class CheckpointReward:
    """The official checkpoint reward for `num_envs` EnvPool football envs, step by step.

    `step(minimap, scoring, ball_owned_team, done, live=None)` returns the checkpoint reward
    of every env's step (float64 [N], multiples of `reward_per_checkpoint`), where
    - minimap: uint8 [N, 72, 96, 4] (EnvPool's, channel-last) or [N, 4, 72, 96]
      (channel-first); only the ball (2) and active-player (3) channels are read;
    - scoring: the scoring reward [N] (+1 for a goal scored pays what is left uncollected);
    - ball_owned_team: `info["ball_owned_team"]` [N] (-1 nobody, 0 left, 1 right);
    - done: which envs' episodes ended on this step (terminated | truncated) [N];
    - live: which envs' steps belong to an episode [N]. Left out, it is tracked here: under
      next-step autoreset the step after an env's `done` is its reset step, not live.
    A step that is not live pays nothing and starts the env's new episode with nothing
    collected; a live step that is `done` pays, then forgets the env's checkpoints.

    `collected` [N] holds each env's checkpoints collected this episode; `state()` and
    `load_state()` save and restore it as plain numpy arrays.
    """

    def __init__(self, num_envs: int, num_checkpoints: int = NUM_CHECKPOINTS,
                 reward_per_checkpoint: float = CHECKPOINT_REWARD, active_radius: int = 2):
        self.num_envs = int(num_envs)
        self.num_checkpoints = int(num_checkpoints)
        self.reward_per_checkpoint = float(reward_per_checkpoint)
        self.active_radius = int(active_radius)
        self.thresholds = checkpoint_thresholds(self.num_checkpoints)
        self.collected = np.zeros(self.num_envs, np.int64)
        self._reset_next = np.zeros(self.num_envs, bool)

    def reset(self, env_ids=None) -> None:
        """Start new episodes: all envs (after `envs.reset()`), or those in `env_ids`."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids)
        self.collected[ids] = 0
        self._reset_next[ids] = False

    def step(self, minimap: np.ndarray, scoring, ball_owned_team, done,
             live=None) -> np.ndarray:
        n = self.num_envs
        scoring = np.broadcast_to(np.asarray(scoring, np.float64), (n,))
        done = np.broadcast_to(np.asarray(done, bool), (n,))
        live = ~self._reset_next if live is None else np.broadcast_to(np.asarray(live, bool), (n,))
        self.collected[~live] = 0  # a reset step: the new episode starts with nothing

        x, y, carrier = ball_and_carrier(minimap, ball_owned_team, self.active_radius)
        reached = checkpoints_within(np.nan_to_num(goal_distance(x, y), nan=np.inf),
                                     self.thresholds)
        goal = live & (scoring == 1)
        new = np.where(live & carrier, np.maximum(self.collected, reached), self.collected)
        new = np.where(goal, self.num_checkpoints, new)
        reward = (new - self.collected) * self.reward_per_checkpoint

        ended = done & live
        self.collected = np.where(ended, 0, new)
        self._reset_next = ended
        return reward

    def state(self) -> dict[str, np.ndarray]:
        """The per-env state as plain arrays (copies)."""
        return {"collected": self.collected.copy(), "reset_next": self._reset_next.copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        collected = np.asarray(state["collected"], np.int64)
        reset_next = np.asarray(state["reset_next"], bool)
        if collected.shape != (self.num_envs,) or reset_next.shape != (self.num_envs,):
            raise ValueError(f"checkpoint state for {collected.shape} envs, this has "
                             f"{self.num_envs}")
        self.collected = collected.copy()
        self._reset_next = reset_next.copy()
