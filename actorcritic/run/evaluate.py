"""Evaluation on the raw task (unclipped rewards, all lives), and MP4 videos of episodes."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from actorcritic.config import EnvConfig
from actorcritic.envs import make_vector_env
from actorcritic.envs.actions import ActionAdapter
from actorcritic.envs.football_scenarios import mix_scenarios, single_scenario_env
from actorcritic.envs.vector import Episode
from actorcritic.models.actor_critic import ActorCritic


def sampling_stream(greedy: bool, seed: int, device: torch.device | str = "cpu"
                    ) -> torch.Generator | None:
    """The random stream a sampling (not greedy) evaluation draws its actions from: its own,
    seeded with the evaluation's seed, so that the same seed plays the same games and an
    evaluation during training leaves the training's random stream untouched."""
    if greedy:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def play_episodes(model: ActorCritic, env_cfg: EnvConfig, episodes: int, greedy: bool,
                  seed: int, device: torch.device | str = "cpu",
                  num_envs: int | None = None) -> list[Episode]:
    """Play exactly `episodes` full episodes, split evenly over a few envs.

    Each env plays a fixed quota, so short episodes are not over-represented; an env that
    has played its quota is retired where the vector env can (it is no longer emulated:
    10 Breakout games over 8 envs, three of them stuck until the 27k-step truncation,
    stepped 230k env steps for the 94k counted). A football
    env of several players (env.players) counts games: each game is that many rows of the
    batch and ends one episode.
    """
    generator = sampling_stream(greedy, seed, device)
    n = min(episodes, num_envs or 8)
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    envs = make_vector_env(env_cfg, num_envs=n, seed=seed, mode="eval")
    rows, per_game = envs.num_envs, envs.num_envs // n  # a game's episode: at its first row
    to_env = ActionAdapter(envs.single_action_space)
    retire = getattr(envs, "retire", None)
    done: list[Episode] = []
    try:
        obs = torch.as_tensor(envs.reset(seed=seed), device=device)
        first = torch.ones(rows, dtype=torch.bool, device=device)
        reset_next = torch.zeros(rows, dtype=torch.bool, device=device)
        state = model.initial_state(rows, device)
        counts = np.zeros(n, dtype=int)
        while (counts < quota).any():
            action, _, _, state = model.act(obs, first, state, greedy=greedy,
                                            generator=generator)
            obs_np, _, term, trunc, finished = envs.step(to_env(action))
            for ep in finished:
                game = ep.env_index // per_game
                if counts[game] < quota[game]:
                    done.append(ep)
                    counts[game] += 1
                    if counts[game] == quota[game] and per_game == 1 and retire:
                        retire(game)  # its games are played: stop emulating it
            first = reset_next.clone()
            reset_next = ~reset_next & torch.from_numpy(term | trunc).to(device)
            obs = torch.as_tensor(obs_np, device=device)
    finally:
        envs.close()
    return done


def summarize(episodes: list[Episode]) -> dict:
    returns = [e.ret for e in episodes]
    out = {
        "episodes": len(returns),
        "mean_return": statistics.fmean(returns),
        "std_return": statistics.pstdev(returns),
        "median_return": statistics.median(returns),
        "min_return": min(returns),
        "max_return": max(returns),
        "mean_length": statistics.fmean(e.length for e in episodes),
    }
    wins = [e.extras["win"] for e in episodes if "win" in e.extras]
    if wins:
        out["win_rate"] = statistics.fmean(wins)
    if any("score_diff" in e.extras for e in episodes):
        out["mean_goal_difference"] = statistics.fmean(
            e.extras.get("score_diff", 0.0) for e in episodes)
    return out


def evaluate_policy(model: ActorCritic, env_cfg: EnvConfig, episodes: int, greedy: bool = True,
                    seed: int = 10_000, device: torch.device | str = "cpu") -> dict:
    """`episodes` episodes summarized. A run over several football scenarios plays
    `episodes` games of each: the figures over all of them, and each scenario's under
    "scenarios"."""
    was_training = model.training
    model.eval()
    try:
        mix = mix_scenarios(env_cfg.id)
        if not mix:
            return summarize(play_episodes(model, env_cfg, episodes, greedy, seed, device))
        played = {s: play_episodes(model, single_scenario_env(env_cfg, s), episodes, greedy,
                                   seed, device) for s in mix}
        out = summarize([ep for eps in played.values() for ep in eps])
        out["scenarios"] = {s: summarize(eps) for s, eps in played.items()}
        return out
    finally:
        model.train(was_training)


def record_video(model: ActorCritic, env_cfg: EnvConfig, out_dir: Path, episodes: int = 1,
                 greedy: bool = True, seed: int = 20_000, fps: int | None = None,
                 device: torch.device | str = "cpu", max_frames: int = 20_000
                 ) -> list[tuple[Path, int, float]]:
    """Play `episodes` episodes on a rendering env and write one MP4 per episode.

    Returns (path, frames, episode return) per video; frames = steps + 1 (the reset frame).
    """
    import imageio.v2 as imageio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    envs = make_vector_env(env_cfg, num_envs=1, seed=seed, mode="eval", render=True)
    to_env = ActionAdapter(envs.single_action_space)
    generator = sampling_stream(greedy, seed, device)
    paths = []
    if fps is None:  # play at the env's own speed (football steps 10 times a second)
        fps = envs.render_fps()
    try:
        obs = torch.as_tensor(envs.reset(seed=seed), device=device)
        rows = envs.num_envs  # 1, or the players of one game (env.players)
        for k in range(episodes):
            first = torch.ones(rows, dtype=torch.bool, device=device)
            state = model.initial_state(rows, device)
            path = out_dir / f"episode_{k:03d}.mp4"
            first_frame = _first_frame(envs, env_cfg.id)
            writer = imageio.get_writer(path, fps=fps, codec="libx264", quality=7,
                                        macro_block_size=2)
            writer.append_data(first_frame)
            frames = 1
            finished = []
            while not finished and frames < max_frames:
                action, _, _, state = model.act(obs, first, state, greedy=greedy,
                                                generator=generator)
                obs_np, _, term, trunc, finished = envs.step(to_env(action))
                first = torch.zeros(rows, dtype=torch.bool, device=device)
                writer.append_data(envs.render_first())
                frames += 1
                obs = torch.as_tensor(obs_np, device=device)
            writer.close()
            paths.append((path, frames, finished[0].ret if finished else float("nan")))
            # the env resets on the next step (next-step autoreset)
            obs = torch.as_tensor(envs.step(to_env(action))[0], device=device)
    finally:
        envs.close()
    return paths


def _first_frame(envs, env_id: str):
    """The first rendered frame; a MuJoCo env that cannot get an OpenGL context, or an env
    whose renderer is not installed, says what to install in one line."""
    import gymnasium as gym

    from actorcritic.envs.mujoco_gl import is_mujoco, render_error
    from actorcritic.extras import dependency_error

    try:
        return envs.render_first()
    except gym.error.DependencyNotInstalled as exc:  # e.g. a renderer's pygame
        raise dependency_error(env_id, exc) from None
    except Exception as exc:
        if is_mujoco(env_id):
            raise render_error(env_id, exc) from None
        raise


def evaluate_during_training(session, model: ActorCritic) -> dict:
    """A periodic evaluation (`run.eval_every`) of the current parameters: logged, recorded
    in the session, and kept as the best checkpoint when it scores highest so far.
    `session`: the run's RunSession."""
    cfg = session.cfg
    start = time.monotonic()
    result = evaluate_policy(model, cfg.env, cfg.run.eval_during_episodes,
                             greedy=cfg.run.eval_greedy,
                             seed=cfg.run.seed + 50_000 + session.updates, device=session.device)
    session.eval_seconds += time.monotonic() - start
    session.evaluated(result)
    return result
