"""Several football players under one policy (`env.players: K`): each player is a row.

The official engine controls K left players of a game
(`number_of_left_players_agent_controls=K`) and gives each its own observation (simple115v2:
the active-player one-hot is that player's; extracted: the active-player plane is). One
parameter-shared policy acts for all of them: `FootballPlayersVecEnv` turns n such games
into a VecEnv of n*K rows, so the samplers, the learners and the model see an ordinary batch.

    rows      game g's players are rows g*K ... g*K + K-1: observations [n*K, ...] as one
              player's ([115] or [4, 72, 96]), one Discrete(19) action per row
    rewards   per row: the team's scoring reward (the same on the K rows) minus
              env.time_penalty, plus with env.checkpoint_reward that player's own checkpoint
              reward as the engine pays it: 0.1 per zone the player carries the ball into
              itself, and on a goal every player is paid the zones it had not collected (so
              each row's checkpoint total over a scored episode is 1.0, as for one player)
    ends      a game's terminated / truncated on all its K rows at once; the step after
              resets the game, ignores its K actions and pays 0 on its K rows (vector.py's
              next-step autoreset, row by row)
    episodes  one Episode per finished game (not K), env_index = the game's first row g*K;
              its return is the goal difference, as for one player
    steps     run.total_steps and the step counters count game steps: env.num_envs games
              make env.num_envs x K transitions per step

The engine refuses nothing here until reset (an IndexError for more players than the
team has), so `check_players` says what is wrong first, in one line.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from actorcritic.config import EnvConfig
from actorcritic.envs.football import (
    PLAYER_REWARDS_KEY,
    GFootballVecEnv,
    import_gfootball,
    make_football_vector_env,
)
from actorcritic.envs.football_scenarios import scenarios_of
from actorcritic.envs.vector import Episode
from actorcritic.errors import EnvError


def controllable_left_players(scenario: str) -> int:
    """How many of the scenario's left players an agent can control (gfootball's scenario
    builder; 5_vs_5's keeper, for one, is not controllable)."""
    football_env = import_gfootball()
    scenario_cfg = football_env.config.Config({"level": scenario}).ScenarioConfig()
    return int(scenario_cfg.controllable_left_players)


def check_players(cfg: EnvConfig, backend: str) -> None:
    """One EnvError for env.players the env cannot give (config load refuses most of it
    already; this guards an EnvConfig built in code)."""
    players = cfg.players
    if players < 1:
        raise EnvError(f"env.players must be >= 1, got {players}")
    if backend == "envpool":
        raise EnvError(f"env.players={players}: EnvPool's football engine controls one player "
                       f"only; set env.backend=gfootball for the official engine")
    if cfg.representation.startswith("pixels"):
        raise EnvError(f"env.players={players}: env.representation={cfg.representation} gives "
                       f"every player the same frame; use simple115v2 or extracted")
    for scenario in scenarios_of(cfg.id):
        team = controllable_left_players(scenario)
        if players > team:
            raise EnvError(f"env.players={players} is more than the {team} left players an "
                           f"agent can control in {scenario}; set env.players to at most "
                           f"{team}")


def make_players_vector_env(cfg: EnvConfig, n: int, seed: int, mode: str, backend: str,
                            render: bool) -> FootballPlayersVecEnv:
    """`n` games of `cfg.players` controlled players each, as n*players rows."""
    check_players(cfg, backend)
    games = make_football_vector_env(cfg, n, seed, mode, backend, render)
    return FootballPlayersVecEnv(games, cfg.players)


class FootballPlayersVecEnv:
    """`games`: a vector of K-player games (observations [K, ...], MultiDiscrete actions,
    per-player rewards in info[PLAYER_REWARDS_KEY]) seen as one VecEnv of n*K rows."""

    def __init__(self, games: GFootballVecEnv, players: int):
        self.games, self.players = games, players
        self.scenario_draw = games.scenario_draw  # checkpointed with the run (snapshot.py)
        self.num_games = games.num_envs
        self.num_envs = games.num_envs * players
        space = games.single_observation_space
        self.single_observation_space = gym.spaces.Box(space.low[0], space.high[0],
                                                       space.shape[1:], space.dtype)
        self.single_action_space = gym.spaces.Discrete(int(games.single_action_space.nvec[0]))

    def _rows(self, x: np.ndarray) -> np.ndarray:
        """[n, K, ...] -> [n*K, ...] (game-major: a game's players are adjacent rows)."""
        return x.reshape(self.num_envs, *x.shape[2:])

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self._rows(self.games.reset(seed=seed))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                 np.ndarray, list[Episode]]:
        actions = np.asarray(actions).reshape(self.num_games, self.players)
        obs, _, terminated, truncated, episodes, info = self.games.step_info(actions)
        # A game's reset step has no player rewards in its info: its rows pay 0.
        reward = np.zeros((self.num_games, self.players), np.float32)
        if PLAYER_REWARDS_KEY in info:
            stepped = info[f"_{PLAYER_REWARDS_KEY}"]
            reward[stepped] = info[PLAYER_REWARDS_KEY][stepped]
        for episode in episodes:  # one per game, at its first row
            episode.env_index *= self.players
        return (self._rows(obs), reward.reshape(-1), np.repeat(terminated, self.players),
                np.repeat(truncated, self.players), episodes)

    def close(self) -> None:
        self.games.close()

    def render_fps(self) -> int:
        return self.games.render_fps()

    def render_first(self) -> np.ndarray | None:
        """RGB frame of game 0 (its K players are rows 0 ... K-1)."""
        return self.games.render_first()
