"""PPO throughput: actorcritic vs Stable-Baselines3's PPO with the same settings, side by
side in one run (rounds alternate, so load changes hit both).

- CartPole: the cartpole-ppo preset (8 envs x 32 steps, 20 epochs of one 256-sample
  minibatch, separate 64-64 tanh actor and critic, Adam 1e-3 and clip 0.2 decayed), one
  torch thread each; ours on Gymnasium's NumPy-vectorized CartPole, SB3 on its DummyVecEnv.
- Pong: the pong-ppo preset (Nature CNN shared, 8 envs x 128 steps, 4 epochs, 4 minibatches
  of 256, Adam 2.5e-4 decayed, clip 0.1, value clipping), torch on every core; ours on
  EnvPool, SB3 on make_atari_env + VecFrameStack(4) (its standard Atari pipeline).

Both sides are timed end to end (env and model creation, training; ours also writes its
final checkpoint), with no evaluation.
Usage: python benchmarks/ppo_vs_sb3.py [--tasks cartpole pong] [--rounds 2]
       [--cartpole-steps 50000] [--pong-steps 10240] [--overlap] [--bfloat16]
--overlap adds rows with algo.overlap=true; --bfloat16 adds Pong rows with
model.precision=bfloat16 (the CNN under bfloat16 autocast; SB3 stays float32).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from common import Timer, machine, print_table, require_sb3

# float32 unless a row says otherwise (model.precision=auto would pick bfloat16 on a CPU with
# AMX; SB3 runs in float32): --bfloat16 adds those rows
OFF = ["run.eval_episodes=0", "run.eval_every=0", "run.stop_eval_return=null",
       "run.stop_mean_return=null", "run.log_every=1000", "run.checkpoint_every=0",
       "model.precision=float32"]


def ours(preset: str, steps: int, extra: list[str]) -> float:
    from actorcritic import train

    with tempfile.TemporaryDirectory() as tmp:
        s = train(preset, f"{tmp}/run", quiet=True,
                  overrides=OFF + [f"run.total_steps={steps}", *extra])
    return s["env_steps"] / s["wall_seconds"]


def sb3_cartpole(steps: int) -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    with Timer() as t:
        env = make_vec_env("CartPole-v1", n_envs=8, seed=1)
        model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98,
                    gae_lambda=0.8, learning_rate=lambda left: 1e-3 * left,
                    clip_range=lambda left: 0.2 * left, ent_coef=0.0, vf_coef=0.5,
                    max_grad_norm=0.5, device="cpu", seed=1,
                    policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                                   "activation_fn": torch.nn.Tanh})
        model.learn(total_timesteps=steps)
        env.close()
    return steps / t.seconds


def sb3_pong(steps: int) -> float:
    import os

    import ale_py
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    torch.set_num_threads(os.cpu_count() or 1)
    with Timer() as t:
        env = VecFrameStack(make_atari_env("PongNoFrameskip-v4", n_envs=8, seed=1), n_stack=4)
        model = PPO("CnnPolicy", env, n_steps=128, batch_size=256, n_epochs=4, gamma=0.99,
                    gae_lambda=0.95, learning_rate=lambda left: 2.5e-4 * left,
                    clip_range=0.1, clip_range_vf=0.1, ent_coef=0.01, vf_coef=0.5,
                    max_grad_norm=0.5, device="cpu", seed=1)
        model.learn(total_timesteps=steps)
        env.close()
    return steps / t.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=["cartpole", "pong"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cartpole-steps", type=int, default=50_000)
    parser.add_argument("--pong-steps", type=int, default=10_240)
    parser.add_argument("--overlap", action="store_true", help="also time algo.overlap=true")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also time Pong with model.precision=bfloat16")
    args = parser.parse_args()
    require_sb3()
    runs = {
        "cartpole": {"ours": lambda: ours("cartpole-ppo", args.cartpole_steps, []),
                     "sb3": lambda: sb3_cartpole(args.cartpole_steps)},
        "pong": {"ours": lambda: ours("pong-ppo", args.pong_steps, []),
                 "sb3": lambda: sb3_pong(args.pong_steps)},
    }
    variants = {"overlapped": ["algo.overlap=true"]} if args.overlap else {}
    if args.overlap:
        runs["cartpole"]["ours, overlapped"] = lambda: ours(
            "cartpole-ppo", args.cartpole_steps, ["algo.overlap=true"])
    if args.bfloat16:
        variants["bfloat16"] = ["model.precision=bfloat16"]
        if args.overlap:
            variants["overlapped, bfloat16"] = ["algo.overlap=true", "model.precision=bfloat16"]
    for name, sets in variants.items():
        runs["pong"][f"ours, {name}"] = lambda sets=sets: ours("pong-ppo", args.pong_steps, sets)
    rows = []
    for task in args.tasks:
        results: dict[str, list[float]] = {name: [] for name in runs[task]}
        for r in range(args.rounds):
            for name, run in runs[task].items():
                results[name].append(run())
                print(f"{task} round {r + 1} {name}: {results[name][-1]:,.0f} steps/s",
                      flush=True)
        base = statistics.median(results["sb3"])
        for name, values in results.items():
            med = statistics.median(values)
            rows.append([task, name, f"{med:,.0f}", f"{med / base:.2f}x",
                         " / ".join(f"{v:,.0f}" for v in values)])
    print_table(f"PPO steps/s, median of {args.rounds} alternating rounds ({machine()})",
                ["task", "row", "steps/s", "vs SB3", "rounds"], rows)


if __name__ == "__main__":
    main()
