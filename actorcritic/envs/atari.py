"""Atari (ALE) environments behind `make_vector_env`, on three backends.

- `envpool`: EnvPool's C++ thread pool with its own DeepMind preprocessing.
- `ale_vector`: ale-py's native `AtariVectorEnv` (C++ threads, its own preprocessing).
- `sync` / `async`: Gymnasium wrappers over `ALE/<Game>-v5` (the reference path; the only
  one that renders RGB frames for videos).

All three give uint8 observations [frame_stack * C, H, W] (C=1 gray, 3 RGB) for the same
config, next-step autoreset, and episode statistics on the raw game score over all lives.
Training mode adds episodic life and reward clipping (as configured); mode="eval" plays
full games on the raw reward.

Accepted ids: `ALE/Pong-v5`, `Pong-v5` (EnvPool style), `PongNoFrameskip-v4`, `Pong-v4`,
`PongDeterministic-v4` (and the -v0 forms). Whatever the id's variant, the frame skip,
sticky actions and preprocessing come from the config (env.frame_skip, env.sticky_actions...).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache, partial

import gymnasium as gym
import numpy as np

from actorcritic.config import EnvConfig
from actorcritic.envs.vector import EnvPoolVecEnv, Episode, GymVecEnv, VecEnv
from actorcritic.errors import EnvError
from actorcritic.extras import require

# The games ale-py ships (0.12): Atari ids are recognized, and a missing Atari extra named,
# where ale-py is not installed.
ALE_GAMES = """
    adventure air_raid alien amidar assault asterix asteroids atlantis atlantis2 backgammon
    bank_heist basic_math battle_zone beam_rider berzerk blackjack bowling boxing breakout
    carnival casino centipede chopper_command combat crazy_climber crossbow darkchambers
    defender demon_attack donkey_kong double_dunk earthworld elevator_action enduro entombed
    et fishing_derby flag_capture freeway frogger frostbite galaxian gopher gravitar hangman
    haunted_house hero human_cannonball ice_hockey jamesbond journey_escape joust kaboom
    kangaroo keystone_kapers king_kong klax koolaid krull kung_fu_master laser_gates
    lost_luggage mario_bros maze_craze miniature_golf montezuma_revenge mr_do ms_pacman
    name_this_game othello pacman phoenix pitfall pitfall2 pong pooyan private_eye qbert
    riverraid road_runner robotank seaquest sir_lancelot skiing solaris space_invaders
    space_war star_gunner superman surround tennis tetris tic_tac_toe_3d time_pilot trondead
    turmoil tutankham up_n_down venture video_checkers video_chess video_cube video_pinball
    warlords wizard_of_wor word_zapper yars_revenge zaxxon
""".split()

_ID = re.compile(r"^(?P<ale>ALE/)?(?P<game>[A-Z][A-Za-z0-9]*?)"
                 r"(?P<variant>NoFrameskip|Deterministic)?-v(?P<version>\d+)$")


@lru_cache(maxsize=1)
def _rom_names() -> dict[str, str]:
    """CamelCase game name -> ale-py ROM id ("SpaceInvaders" -> "space_invaders")."""
    try:
        from ale_py import roms

        games = roms.get_all_rom_ids()
    except ImportError:  # no Atari extra: still recognize the ids, to name the extra
        games = ALE_GAMES
    return {camel_name(rom): rom for rom in games}


def atari_game(env_id: str) -> str | None:
    """The ALE ROM id an env id names, or None when it is not an Atari id."""
    m = _ID.match(env_id)
    if m is None:
        return None
    version = int(m["version"])
    if m["ale"] and (m["variant"] or version != 5):
        return None
    if not m["ale"] and version not in (0, 4, 5):
        return None
    if version == 5 and m["variant"]:
        return None
    return _rom_names().get(m["game"])


def is_atari_id(env_id: str) -> bool:
    """True for ids of ALE games: `ALE/Pong-v5`, `Pong-v5`, `PongNoFrameskip-v4`, ...
    (and False for e.g. `HalfCheetah-v5` or `CartPole-v1`)."""
    return atari_game(env_id) is not None


def camel_name(game: str) -> str:
    return "".join(p.capitalize() for p in game.split("_"))


def make_atari_vector_env(cfg: EnvConfig, n: int, seed: int, mode: str, backend: str,
                          render: bool = False) -> VecEnv:
    """`n` Atari envs for training (mode="train") or evaluation (mode="eval", raw game)."""
    game = atari_game(cfg.id)
    if game is None:
        raise EnvError(f"env '{cfg.id}' is not an Atari id (use e.g. ALE/Pong-v5, Pong-v5 or "
                       f"PongNoFrameskip-v4)")
    train = mode == "train"
    if render:
        backend = "sync"
    if cfg.frame_skip < 1 or cfg.frame_stack < 1:
        raise EnvError("env.frame_skip and env.frame_stack must be >= 1")
    require_atari(cfg.id, backend)
    if backend == "envpool":
        return _envpool(cfg, game, n, seed, train)
    if backend == "ale_vector":
        return _ale_vector(cfg, game, n, train)
    if backend in ("sync", "async"):
        make_atari_env(cfg, game, train, render)  # fail early, in this process
        fns = [partial(make_atari_env, cfg, game, train, render) for _ in range(n)]
        return GymVecEnv(fns, asynchronous=backend == "async", step_timeout=cfg.step_timeout,
                         env_id=cfg.id)
    raise EnvError(f"env.backend={backend} is not available for Atari (use envpool, "
                   f"ale_vector, sync or async)")


def require_atari(env_id: str, backend: str) -> None:
    """The Atari extra's packages that `backend` uses, or one line naming the extra."""
    gym_path = ["ale_py", "cv2"]
    modules = {"envpool": ["envpool"], "ale_vector": ["ale_py"], "sync": gym_path,
               "async": gym_path}.get(backend, [])
    for module in modules:
        require(module, "atari", f"env '{env_id}'")


def _no_crop(cfg: EnvConfig, backend: str) -> None:
    if cfg.crop and any(int(v) for v in cfg.crop):
        raise EnvError(f"env.crop is done by the Gymnasium wrappers: use env.backend=sync or "
                       f"async (not {backend})")


# ---------------------------------------------------------------- Gymnasium wrappers

def make_atari_env(cfg: EnvConfig, game: str, train: bool = True,
                   render: bool = False) -> gym.Env:
    """One Atari env with the DeepMind preprocessing (see atari_wrappers for the order)."""
    from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit

    require_atari(cfg.id, "sync")
    from actorcritic.envs import atari_wrappers as W

    kwargs = dict(frameskip=1, repeat_action_probability=float(cfg.sticky_actions),
                  full_action_space=False, obs_type="grayscale" if cfg.grayscale else "rgb")
    kwargs.update(cfg.kwargs)
    if render:
        kwargs["render_mode"] = "rgb_array"
    try:
        import ale_py

        gym.register_envs(ale_py)  # the ALE/ namespace exists only once ale_py registers it
        env = gym.make(f"ALE/{camel_name(game)}-v5", **kwargs)
    except (gym.error.Error, TypeError) as exc:
        raise EnvError(f"env '{cfg.id}' could not be made: {exc}") from None
    if cfg.noop_max > 0:
        env = W.NoopReset(env, cfg.noop_max)
    env = W.SkipMaxPool(env, cfg.frame_skip)
    if cfg.max_episode_steps:
        env = TimeLimit(env, cfg.max_episode_steps)
    env = RecordEpisodeStatistics(env)
    if train and cfg.episodic_life:
        env = W.EpisodicLife(env)
    if cfg.fire_reset and W.needs_fire(env):
        env = W.FireReset(env)
    try:
        env = W.CropResize(env, tuple(cfg.resize), tuple(cfg.crop))
    except ValueError as exc:
        raise EnvError(str(exc)) from None
    env = W.FrameStack(env, cfg.frame_stack)
    if train and cfg.clip_rewards:
        env = W.ClipReward(env)
    return env


# ---------------------------------------------------------------- EnvPool

def _envpool(cfg: EnvConfig, game: str, n: int, seed: int, train: bool) -> VecEnv:
    import envpool

    _no_crop(cfg, "envpool")
    task = f"{camel_name(game)}-v5"
    if task not in envpool.list_all_envs():
        raise EnvError(f"env '{cfg.id}': EnvPool has no {task}; use env.backend=sync or "
                       f"ale_vector")
    kwargs = dict(episodic_life=train and cfg.episodic_life,
                  reward_clip=train and cfg.clip_rewards,
                  stack_num=cfg.frame_stack, img_height=int(cfg.resize[0]),
                  img_width=int(cfg.resize[1]), gray_scale=cfg.grayscale,
                  noop_max=max(cfg.noop_max, 1), frame_skip=cfg.frame_skip,
                  repeat_action_probability=float(cfg.sticky_actions),
                  use_fire_reset=cfg.fire_reset, num_threads=cfg.num_threads or _threads(n))
    if cfg.max_episode_steps:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    kwargs.update(cfg.kwargs)
    try:
        # info["reward"] is the unclipped reward; info["terminated"] marks a real game over
        # (with episodic life, `terminated` is also set on every lost life).
        return EnvPoolVecEnv(task, n, seed, raw_reward_key="reward", game_over_key="terminated",
                             **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise EnvError(f"env '{cfg.id}' (EnvPool {task}) could not be made: {exc}") from None


def _threads(n: int) -> int:
    return max(1, min(n, os.cpu_count() or 1))


# ---------------------------------------------------------------- ale-py AtariVectorEnv

class AleVecEnv:
    """ale-py's native `AtariVectorEnv` behind the VecEnv interface.

    The native env is asked for raw rewards and no episodic life (its episodic-life mode
    restarts the whole game at every lost life); both are done here instead, so episode
    statistics stay on the raw score over all lives. After a lost life the game goes on:
    the next step is still reported as a reset step (reward 0 to the learner) as the
    VecEnv protocol requires, while its raw reward counts in the episode statistics.
    """

    def __init__(self, game: str, num_envs: int, episodic_life: bool, clip_rewards: bool,
                 **kwargs):
        from ale_py.vector_env import AtariVectorEnv

        self.env = AtariVectorEnv(game, num_envs, episodic_life=False, life_loss_info=False,
                                  reward_clipping=False, **kwargs)
        space = self.env.single_observation_space
        self.color = len(space.shape) == 4
        if self.color:
            k, h, w, c = space.shape
            space = gym.spaces.Box(0, 255, (k * c, h, w), np.uint8)
        self.num_envs = num_envs
        self.single_observation_space = space
        self.single_action_space = self.env.single_action_space
        self.episodic_life = episodic_life
        self.clip_rewards = clip_rewards
        self._returns = np.zeros(num_envs, np.float64)
        self._lengths = np.zeros(num_envs, np.int64)
        self._lives = np.zeros(num_envs, np.int64)
        self._game_reset = np.zeros(num_envs, bool)   # the native env resets on this step
        self._reset_next = np.zeros(num_envs, bool)   # the learner sees a reset step

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        if self.color:
            n, k, h, w, c = obs.shape
            obs = np.ascontiguousarray(obs.transpose(0, 1, 4, 2, 3)).reshape(n, k * c, h, w)
        return obs

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, info = self.env.reset(seed=seed)
        self._returns[:] = 0
        self._lengths[:] = 0
        self._lives[:] = info["lives"]
        self._game_reset[:] = False
        self._reset_next[:] = False
        return self._obs(obs)

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions)
        if actions.dtype not in (np.int32, np.int64):
            actions = actions.astype(np.int64)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        raw = reward.astype(np.float64)
        playing = ~self._game_reset
        self._returns[playing] += raw[playing]
        self._lengths[playing] += 1
        game_over = (terminated | truncated) & playing
        lives = info["lives"]
        terminated = terminated.astype(bool)
        truncated = truncated.astype(bool)
        if self.episodic_life:
            terminated |= (lives < self._lives) & playing & ~self._reset_next
        self._lives[:] = lives
        out = np.sign(raw) if self.clip_rewards else raw
        out = out.astype(np.float32)
        out[self._reset_next] = 0.0
        episodes = []
        for i in np.flatnonzero(game_over):
            episodes.append(Episode(int(i), float(self._returns[i]), int(self._lengths[i])))
            self._returns[i] = 0
            self._lengths[i] = 0
        self._game_reset = game_over
        self._reset_next = (terminated | truncated) & ~self._reset_next
        return self._obs(obs), out, terminated, truncated, episodes

    def close(self) -> None:
        self.env.close()


def _ale_vector(cfg: EnvConfig, game: str, n: int, train: bool) -> VecEnv:
    _no_crop(cfg, "ale_vector")
    kwargs = dict(img_height=int(cfg.resize[0]), img_width=int(cfg.resize[1]),
                  grayscale=cfg.grayscale, stack_num=cfg.frame_stack, frameskip=cfg.frame_skip,
                  maxpool=True, noop_max=cfg.noop_max, use_fire_reset=cfg.fire_reset,
                  repeat_action_probability=float(cfg.sticky_actions),
                  num_threads=cfg.num_threads or _threads(n))
    if cfg.max_episode_steps:
        kwargs["max_num_frames_per_episode"] = cfg.max_episode_steps * cfg.frame_skip
    kwargs.update(cfg.kwargs)
    try:
        return AleVecEnv(game, n, episodic_life=train and cfg.episodic_life,
                         clip_rewards=train and cfg.clip_rewards, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise EnvError(f"env '{cfg.id}' (ale-py AtariVectorEnv '{game}') could not be made: "
                       f"{exc}") from None
