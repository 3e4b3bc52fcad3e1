"""Recurrent vs feedforward A2C throughput on the same env and batch, side by side.

CartPole-v1 (EnvPool), 8 envs x 16 steps, separate 64-unit actor/critic; the recurrent run
adds an LSTM (or GRU) core of 64 units to each. Issue bar: recurrent >= 70% of feedforward.
Usage: python benchmarks/recurrent_throughput.py [--steps 200000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile

from common import machine, print_table

BASE = ["env.backend=envpool", "env.num_envs=8", "algo.num_steps=16", "model.hidden_sizes=[64]",
        "model.core_size=64", "env.hide_obs=[]", "run.eval_episodes=0", "run.log_every=100"]


def sps(core: str, steps: int) -> float:
    from actorcritic import train

    with tempfile.TemporaryDirectory() as tmp:
        s = train("cartpole-masked-lstm-a2c", f"{tmp}/run", quiet=True,
                  overrides=BASE + [f"model.core={core}", f"run.total_steps={steps}"])
    return s["env_steps"] / s["wall_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    best = {"none": 0.0, "lstm": 0.0, "gru": 0.0}
    for _ in range(args.repeats):  # interleaved, best of N: the machine is shared
        for core in best:
            best[core] = max(best[core], sps(core, args.steps))
    rows = [[core, f"{v:,.0f}", f"{v / best['none']:.0%}"] for core, v in best.items()]
    print_table(f"CartPole-v1 A2C, 8 envs x 16 steps, env steps/s ({machine()})",
                ["core", "steps/s", "vs feedforward"], rows)


if __name__ == "__main__":
    main()
