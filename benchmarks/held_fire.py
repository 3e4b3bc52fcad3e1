"""Why a greedy KungFuMaster policy scores nothing: the game attacks when the button is
pressed, not while it is held. Scripted players on the evaluation env of a preset (full
games, raw score): each FIRE action held for the whole game, and each alternated step by step
with the same move without FIRE (the button pressed and released).

    cd benchmarks && ../.venv/bin/python held_fire.py --preset kungfu-lstm-a2c --games 2

No trained agent is needed; results and their reading are in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from actorcritic.agent import make_single_env
from actorcritic.config import load_config


def play(env, policy: Callable[[int], int], seed: int, limit: int = 50_000) -> tuple[float, int]:
    """(raw return, agent steps) of one game played by `policy(step)`."""
    env.reset(seed=seed)
    total, step, done = 0.0, 0, False
    while not done and step < limit:
        _, reward, terminated, truncated, _ = env.step(policy(step))
        total, step, done = total + float(reward), step + 1, terminated or truncated
    return total, step


def fire_pairs(meanings: list[str]) -> list[tuple[int, int]]:
    """(FIRE action, the same move without FIRE) for every FIRE action with such a twin."""
    index = {m: i for i, m in enumerate(meanings)}
    out = []
    for a, m in enumerate(meanings):
        if "FIRE" in m:
            twin = m.replace("FIRE", "") or "NOOP"
            if twin in index:
                out.append((a, index[twin]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="kungfu-lstm-a2c")
    parser.add_argument("--games", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    env = make_single_env(load_config(args.preset))
    meanings = env.unwrapped.get_action_meanings()
    seeds = range(args.seed, args.seed + args.games)
    print(f"{args.preset}: {args.games} full games per player, seeds {list(seeds)}\n")
    print("| player | mean return | returns | mean steps |")
    print("|---|---|---|---|")
    for fire, twin in fire_pairs(meanings):
        players = {f"hold {meanings[fire]}": lambda t, f=fire: f,
                   f"{meanings[fire]} / {meanings[twin]} alternating":
                       lambda t, f=fire, w=twin: f if t % 2 == 0 else w}
        for name, policy in players.items():
            games = [play(env, policy, s) for s in seeds]
            returns = [r for r, _ in games]
            print(f"| {name} | {sum(returns) / len(returns):.0f} | {returns} | "
                  f"{sum(t for _, t in games) / len(games):.0f} |")
    env.close()


if __name__ == "__main__":
    main()
