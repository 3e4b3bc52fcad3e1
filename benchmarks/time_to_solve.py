"""Wall time to solve CartPole (mean greedy eval return >= 475 over 20 episodes):
actorcritic cartpole-a2c vs Stable-Baselines3 A2C with the rl-baselines3-zoo
hyperparameters (8 envs, ent_coef 0, otherwise A2C defaults: RMSprop 7e-4, 5 steps).

Both are evaluated every 10k env steps; evaluation time is excluded from both.
Usage: python benchmarks/time_to_solve.py [--seeds 1 2 3] [--max-steps 500000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from common import machine, print_table, require_sb3

EVERY, EPISODES, TARGET = 10_000, 20, 475


def ours(seed: int, max_steps: int) -> tuple[float, int]:
    """The cartpole-a2c preset as shipped: its own step budget (its lr decays to 0 there)
    and its own stop (a greedy 20-episode evaluation every 10k steps reaching 475)."""
    from actorcritic import train

    with tempfile.TemporaryDirectory() as tmp:
        s = train("cartpole-a2c", f"{tmp}/run", quiet=True, overrides=[
            f"run.seed={seed}", f"run.eval_every={EVERY}", f"run.eval_during_episodes={EPISODES}",
            f"run.stop_eval_return={TARGET}", "run.eval_episodes=0"])
    solved = s["stop_reason"] == "stop_eval_return"
    return (s["wall_seconds"] - s["eval_seconds"] if solved else float("inf")), s["env_steps"]


def sb3(seed: int, max_steps: int) -> tuple[float, int]:
    import gymnasium as gym
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    class EvalStop(BaseCallback):
        def __init__(self):
            super().__init__()
            self.eval_seconds, self.next, self.solved = 0.0, EVERY, False
            self.env = gym.make("CartPole-v1")

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next:
                return True
            self.next += EVERY
            start = time.perf_counter()
            mean, _ = evaluate_policy(self.model, self.env, n_eval_episodes=EPISODES,
                                      deterministic=True)
            self.eval_seconds += time.perf_counter() - start
            self.solved = mean >= TARGET
            return not self.solved

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = A2C("MlpPolicy", env, ent_coef=0.0, device="cpu", seed=seed)
    callback = EvalStop()
    start = time.perf_counter()
    model.learn(total_timesteps=max_steps, callback=callback)
    wall = time.perf_counter() - start - callback.eval_seconds
    return (wall if callback.solved else float("inf")), model.num_timesteps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--max-steps", type=int, default=500_000,
                        help="SB3's budget (the zoo's); ours is the preset's")
    args = parser.parse_args()
    require_sb3()
    torch.set_num_threads(1)
    rows, ratios = [], []
    for seed in args.seeds:
        sb3_t, sb3_steps = sb3(seed, args.max_steps)
        our_t, our_steps = ours(seed, args.max_steps)
        ratio = sb3_t / our_t if np.isfinite(our_t) else 0.0
        ratios.append(ratio)
        rows.append([seed, f"{sb3_t:.1f} s / {sb3_steps:,}", f"{our_t:.1f} s / {our_steps:,}",
                     f"{ratio:.1f}x"])
    rows.append(["median", "", "", f"{statistics.median(ratios):.1f}x"])
    print_table(f"CartPole-v1 wall time to eval >= {TARGET} (train time only; {machine()}); "
                f"inf = not solved in {args.max_steps:,} steps",
                ["seed", "SB3 A2C (zoo) time / steps", "ours time / steps", "SB3/ours"], rows)


if __name__ == "__main__":
    main()
