"""CartPole A2C throughput: actorcritic vs Stable-Baselines3 A2C, side by side in one run.

Same hyperparameters as the cartpole-a2c preset (separate 64-64 tanh actor and critic,
Adam 3e-3 decayed linearly, 8-step rollouts, GAE 0.95, normalized advantages), one torch
thread each, no evaluation. Ours on each env backend (vector: Gymnasium's NumPy-vectorized CartPole; sync:
one Python env per slot; envpool: C++ threads).
Usage: python benchmarks/cartpole_throughput.py [--steps 200000] [--repeats 2]
       [--envs 8 64] [--backends vector sync envpool]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from common import Timer, machine, print_table, require_sb3


def ours(num_envs: int, steps: int, backend: str) -> float:
    """End-to-end steps/s of train(): env and model creation, training, final checkpoint."""
    from actorcritic import train

    with tempfile.TemporaryDirectory() as tmp:
        s = train("cartpole-a2c", f"{tmp}/run", quiet=True, overrides=[
            f"env.num_envs={num_envs}", f"env.backend={backend}", f"run.total_steps={steps}",
            "run.eval_episodes=0", "run.eval_every=0", "run.stop_eval_return=null",
            "run.log_every=100", "run.torch_threads=1"])
    return s["env_steps"] / s["wall_seconds"]


def sb3(num_envs: int, steps: int) -> float:
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    with Timer() as t:  # end to end like ours: env and model creation, then training
        _sb3_train(A2C, make_vec_env, num_envs, steps)
    return steps / t.seconds


def _sb3_train(A2C, make_vec_env, num_envs: int, steps: int):
    env = make_vec_env("CartPole-v1", n_envs=num_envs, seed=1)
    model = A2C("MlpPolicy", env, n_steps=8, learning_rate=lambda remaining: 3e-3 * remaining,
                gamma=0.99, gae_lambda=0.95,
                ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, use_rms_prop=False,
                normalize_advantage=True, device="cpu", seed=1,
                policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                               "activation_fn": torch.nn.Tanh})
    model.learn(total_timesteps=steps)
    env.close()
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--envs", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--backends", nargs="+", default=["vector", "sync", "envpool"])
    args = parser.parse_args()
    require_sb3()
    torch.set_num_threads(1)
    rows = []
    for num_envs in args.envs:
        best = dict.fromkeys(["sb3", *args.backends], 0.0)
        scale = 1 if num_envs == 8 else 4  # ours runs longer: start-up is part of the time
        for _ in range(args.repeats):  # interleaved, best of N: the machine is shared
            best["sb3"] = max(best["sb3"], sb3(num_envs, args.steps // 4))
            for backend in args.backends:
                best[backend] = max(best[backend], ours(num_envs, args.steps * scale, backend))
        rows.append([num_envs, *(f"{v:,.0f}" for v in best.values()),
                     *(f"{best[b] / best['sb3']:.1f}x" for b in args.backends)])
    print_table(f"CartPole-v1 A2C env steps/s ({machine()})",
                ["envs", "SB3 A2C", *(f"ours ({b})" for b in args.backends),
                 *(f"{b}/SB3" for b in args.backends)], rows)


if __name__ == "__main__":
    main()
