"""`actorcritic.load(path)`: a trained agent that acts, builds its env and evaluates.

    agent = actorcritic.load("runs/cp3")          # a run dir, a checkpoint or a zoo name
    env = agent.make_env()                        # the preprocessing it was trained with
    obs, _ = env.reset(seed=0)
    action, state = agent.act(obs)                # state: None, or the recurrent state

The agent acts on observations exactly as its environment gives them (uint8 frames for
Atari, float vectors otherwise), one at a time or as a batch. A football agent of several
players (env.players: K) gets a game's [K, ...] observation from `make_env` and returns K
actions, one per player.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from actorcritic.config import Config
from actorcritic.envs.actions import ActionAdapter
from actorcritic.errors import EnvError, UserError
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.models.cores import State
from actorcritic.run.checkpoint import load_checkpoint, load_model_exact, resolve_checkpoint
from actorcritic.run.evaluate import evaluate_policy, record_video


class Agent:
    """A trained policy with the config it was trained with.

    `act` takes the recurrent state from the caller and returns the next one: pass
    `state=None` at the start of an episode (and the returned state after that). For a
    batch whose members start episodes at different times, pass `episode_start` (a bool
    per member) with the state instead.
    """

    def __init__(self, model: ActorCritic, cfg: Config, checkpoint: Path,
                 observation_space: gym.Space, action_space: gym.Space):
        self.model = model.eval()
        self.cfg = cfg
        self.checkpoint = checkpoint
        self.observation_space = observation_space
        self.action_space = action_space
        self.recurrent = len(model.initial_state(1)) > 0
        self._to_env = ActionAdapter(action_space)

    def initial_state(self, batch: int = 1) -> State | None:
        """The recurrent state at an episode start (None for a feedforward agent)."""
        return self.model.initial_state(batch) if self.recurrent else None

    def act(self, obs, state: State | None = None, deterministic: bool = True,
            episode_start=None):
        """Action(s) for one observation or a batch, and the next recurrent state.

        deterministic: the most likely action; False samples from the policy (torch's global
        random stream).
        """
        obs = np.asarray(obs)
        shape = tuple(self.observation_space.shape)
        single = obs.shape == shape
        if not single and obs.shape[1:] != shape:
            raise UserError(f"observation of shape {obs.shape} does not match the agent's "
                            f"observation space {shape} (or a batch [N, {', '.join(map(str, shape))}])")
        batch = obs[None] if single else obs
        n = batch.shape[0]
        dtype = torch.uint8 if self.observation_space.dtype == np.uint8 else torch.float32
        obs_t = torch.as_tensor(batch, dtype=dtype)
        if state is None:
            state = self.model.initial_state(n)
            first = torch.ones(n, dtype=torch.bool)
        elif episode_start is None:
            first = torch.zeros(n, dtype=torch.bool)
        else:
            first = torch.as_tensor(np.asarray(episode_start, bool).reshape(n))
        action, _, _, new_state = self.model.act(obs_t, first, state, greedy=deterministic)
        action = self._to_env(action)
        return (action[0] if single else action), (new_state if self.recurrent else None)

    def make_env(self, render_mode: str | None = None, scenario: str | None = None
                 ) -> gym.Env:
        """One Gymnasium env with the preprocessing of this agent's evaluation: the raw
        task (for Atari full games on the raw score, no reward clipping, no episodic
        life), with the training run's frame skip, crop, resize and frame stack.

        render_mode: None or "rgb_array". scenario: for an agent trained on several
        football scenarios, the one the env plays.
        """
        if render_mode not in (None, "rgb_array"):
            raise UserError(f"render_mode {render_mode!r} is not supported (None or "
                            f"'rgb_array')")
        return make_single_env(self.cfg, render=render_mode == "rgb_array", scenario=scenario)

    @property
    def evaluates_greedy(self) -> bool:
        """How this agent's run evaluated it (`run.eval_greedy`): by its most likely action,
        or by sampling (a policy whose argmax plays badly, such as KungFuMaster's)."""
        return self.cfg.run.eval_greedy

    def evaluate(self, episodes: int = 10, deterministic: bool | None = None,
                 seed: int = 12345, sticky_actions: float | None = None) -> dict:
        """The figures `actorcritic eval` prints (same episodes, same seed, same env).

        deterministic: None plays the way the run evaluated (`evaluates_greedy`); sampled
        actions come from a stream seeded with `seed`, so the same seed plays the same games.
        """
        if episodes < 1:
            raise UserError("episodes must be at least 1")
        return evaluate_policy(self.model, self._eval_env_cfg(sticky_actions), episodes,
                               greedy=self._greedy(deterministic), seed=seed)

    def record_video(self, out_dir: str | Path, episodes: int = 1,
                     deterministic: bool | None = None, seed: int = 12345,
                     sticky_actions: float | None = None) -> list[tuple[Path, int, float]]:
        """MP4s of `episodes` episodes in `out_dir`: [(path, frames, return)]."""
        return record_video(self.model, self._eval_env_cfg(sticky_actions), Path(out_dir),
                            episodes=episodes, greedy=self._greedy(deterministic), seed=seed)

    def _greedy(self, deterministic: bool | None) -> bool:
        return self.evaluates_greedy if deterministic is None else deterministic

    def _eval_env_cfg(self, sticky_actions: float | None):
        if sticky_actions is None:
            return self.cfg.env
        import dataclasses

        return dataclasses.replace(self.cfg.env, sticky_actions=sticky_actions)

    def __repr__(self) -> str:
        return (f"Agent({self.cfg.preset or self.cfg.env.id}, {self.cfg.algo.name}, "
                f"checkpoint={self.checkpoint})")


def make_single_env(cfg: Config, render: bool = False, scenario: str | None = None
                    ) -> gym.Env:
    """The evaluation env of `cfg` as one Gymnasium env (not a vector); `scenario` picks
    one of the scenarios of a run over several (football)."""
    from actorcritic.envs import is_atari, is_football
    from actorcritic.envs import make_single_env as make_gym_env
    from actorcritic.envs.football_scenarios import mix_scenarios, single_scenario_env

    env_cfg = cfg.env
    mix = mix_scenarios(env_cfg.id)
    if scenario is not None and scenario not in mix:
        raise UserError(f"scenario={scenario!r}: this agent plays "
                        f"{', '.join(mix) if mix else 'one task'} ({env_cfg.id})")
    if mix:
        if scenario is None:
            raise UserError(f"this agent plays {len(mix)} football scenarios; name one: "
                            f"make_env(scenario=...), one of {', '.join(mix)}")
        env_cfg = single_scenario_env(env_cfg, scenario)
    if is_atari(env_cfg.id):
        from actorcritic.envs.atari import atari_game, make_atari_env

        return make_atari_env(env_cfg, atari_game(env_cfg.id), train=False, render=render)
    if is_football(env_cfg.id):
        if env_cfg.backend == "envpool":
            raise EnvError(f"{env_cfg.id} runs on EnvPool's football engine, which has no "
                           f"single Gymnasium env; use agent.evaluate() or actorcritic eval")
        from actorcritic.envs.football import import_gfootball, make_gfootball_env
        from actorcritic.envs.football_scenarios import scenario_of

        import_gfootball()
        return make_gfootball_env(scenario_of(env_cfg.id), env_cfg, env_cfg.representation,
                                  render)
    return make_gym_env(env_cfg, render)


def load(target: str | Path, *, env_fn: Callable | None = None,
         encoder: type | None = None) -> Agent:
    """An Agent from a run dir (its best checkpoint), a checkpoint file or a zoo agent
    (`zoo/NAME` or just `NAME`). Loading never runs code from the file: it imports the
    encoder class and env class a run of your own names (docs/CUSTOM.md), and calls no
    function it names.

    env_fn, encoder: the env factory and encoder class the run was trained with, passed
    again (needed for a function factory, and for anything with no importable name)."""
    from actorcritic.custom import checkpoint_config
    from actorcritic.envs import spaces_for
    from actorcritic.models.actor_critic import build_model

    ckpt = load_checkpoint(resolve_checkpoint(target))
    cfg = checkpoint_config(ckpt, env_fn, encoder)
    obs_space, action_space = spaces_for(cfg)
    model = build_model(cfg, obs_space, action_space)
    load_model_exact(model, ckpt)
    return Agent(model, cfg, ckpt.path, obs_space, action_space)
