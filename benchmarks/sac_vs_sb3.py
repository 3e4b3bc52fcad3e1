"""SAC throughput: actorcritic vs Stable-Baselines3's SAC with the same settings, side by
side in one run (rounds alternate, so load changes hit both).

The settings of the issue's bar: HalfCheetah-v5, one env, batch 256, 256-256 ReLU actor
and twin critics, one gradient step per env step, automatic entropy temperature, Adam
3e-4; `--learning-starts` steps of random actions first, then `--steps` steps of learning.
Both sides run on the CPU with the same torch thread count (`--threads`) and are timed end
to end (env and model creation, training; ours also writes its final checkpoint, with the
replay buffer), with no evaluation. Reported: env steps per second over the whole run.

Usage: python benchmarks/sac_vs_sb3.py [--rounds 3] [--steps 5000] [--learning-starts 1000]
       [--threads 1] [--bfloat16] [--no-sb3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from common import Timer, machine, print_table, require_sb3

OFF = ["run.eval_episodes=0", "run.eval_every=0", "run.log_every=1000",
       "run.checkpoint_every=0"]


def ours(steps: int, learning_starts: int, threads: int, precision: str = "float32") -> float:
    from actorcritic import train

    with tempfile.TemporaryDirectory() as tmp, Timer() as t:
        s = train("halfcheetah-sac", f"{tmp}/run", quiet=True, overrides=OFF + [
            f"run.total_steps={steps + learning_starts}", f"run.torch_threads={threads}",
            f"algo.learning_starts={learning_starts}", "algo.buffer_size=100000",
            f"model.precision={precision}"])
    return s["env_steps"] / t.seconds


def ours_bfloat16(steps: int, learning_starts: int, threads: int) -> float:
    return ours(steps, learning_starts, threads, precision="bfloat16")


def sb3(steps: int, learning_starts: int, threads: int) -> float:
    import gymnasium as gym
    from stable_baselines3 import SAC

    torch.set_num_threads(threads)
    with Timer() as t:
        env = gym.make("HalfCheetah-v5")
        model = SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=100_000,
                    learning_starts=learning_starts, batch_size=256, tau=0.005, gamma=0.99,
                    train_freq=1, gradient_steps=1, ent_coef="auto", device="cpu", seed=1,
                    policy_kwargs={"net_arch": [256, 256]})
        model.learn(total_timesteps=steps + learning_starts)
        env.close()
    return (steps + learning_starts) / t.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bfloat16", action="store_true",
                        help="also a row of ours with model.precision=bfloat16 (its matrix "
                             "products in bfloat16; pays on a CPU with AMX or AVX512-BF16)")
    parser.add_argument("--no-sb3", action="store_true",
                        help="leave Stable-Baselines3 out (the rows are then set against ours)")
    args = parser.parse_args()
    if not args.no_sb3:
        require_sb3()
    runs = {"ours": ours} if args.no_sb3 else {"sb3": sb3, "ours": ours}
    if args.bfloat16:
        runs["ours, model.precision=bfloat16"] = ours_bfloat16
    results: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, run in runs.items():
            results[name].append(run(args.steps, args.learning_starts, args.threads))
            print(f"round {r + 1} {name}: {results[name][-1]:,.1f} steps/s", flush=True)
    reference = next(iter(runs))
    base = statistics.median(results[reference])
    rows = [[name, f"{statistics.median(v):,.1f}", f"{statistics.median(v) / base:.2f}x",
             " / ".join(f"{x:,.1f}" for x in v)] for name, v in results.items()]
    print_table(f"SAC on HalfCheetah-v5, env steps/s over {args.learning_starts:,} random + "
                f"{args.steps:,} learning steps, {args.threads} torch thread(s), median of "
                f"{args.rounds} alternating rounds ({machine()})",
                ["row", "steps/s", f"vs {reference}", "rounds"], rows)


if __name__ == "__main__":
    main()
