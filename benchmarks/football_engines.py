"""Football engines' speed per scenario: env steps per second on one core, both engines.

What a user needs to plan a football run: how many env steps one core gives on each
scenario. Each engine plays one env with uniformly random actions (the early-training
case: episodes end on lost balls and out-of-play as often as a policy that knows nothing
makes them end), in this process, on one thread:

- EnvPool's engine (`gfootball/<scenario>-v1`, num_envs 1, num_threads 1), the minimap;
- the official engine (`GFootballEnv`, simple115v2; `extracted` costs the same engine
  step plus the minimap drawing), when installed (`make football`).

Rounds alternate the engines, so load changes hit both; the table gives the median.
A run with N envs on N cores gets about N times these figures, less what the learner takes.

Usage: python benchmarks/football_engines.py [--steps 2000] [--rounds 3]
       [--scenarios academy_empty_goal_close,academy_run_to_score ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import warnings

import numpy as np
from common import Timer, machine, print_table

FIVE = ("academy_empty_goal_close", "academy_empty_goal", "academy_run_to_score",
        "academy_run_to_score_with_keeper", "academy_pass_and_shoot_with_keeper",
        "academy_3_vs_1_with_keeper")


def envpool_rate(scenario: str, steps: int, seed: int) -> float:
    import envpool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        env = envpool.make_gymnasium(f"gfootball/{scenario}-v1", num_envs=1, num_threads=1,
                                     seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 19, (steps, 1))
    env.reset()
    with Timer() as t:
        for a in actions:
            env.step(a)  # EnvPool resets by itself on the step after an episode end
    env.close()
    return steps / t.seconds


def official_rate(scenario: str, steps: int, seed: int) -> float:
    from actorcritic.envs.football import GFootballEnv

    env = GFootballEnv(scenario, "simple115v2")
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 19, steps)
    env.reset(seed=seed)
    with Timer() as t:
        for a in actions:
            _, _, terminated, truncated, _ = env.step(int(a))
            if terminated or truncated:
                env.reset()
    env.close()
    return steps / t.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(FIVE))
    args = parser.parse_args()
    engines = {"EnvPool (minimap)": envpool_rate}
    if importlib.util.find_spec("gfootball") is not None:
        engines["official (simple115v2)"] = official_rate
    scenarios = args.scenarios.split(",")
    rates: dict = {(s, e): [] for s in scenarios for e in engines}
    for r in range(args.rounds):
        for s in scenarios:
            for name, rate in engines.items():
                rates[(s, name)].append(rate(s, args.steps, seed=r))
    rows = [[s] + [f"{statistics.median(rates[(s, e)]):,.0f}" for e in engines]
            for s in scenarios]
    print_table(f"Football env steps/s on one core, random actions ({args.steps:,} steps, "
                f"median of {args.rounds} rounds; {machine()})", ["scenario", *engines], rows)


if __name__ == "__main__":
    main()
