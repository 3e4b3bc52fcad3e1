"""How reliably a preset learns: train it as shipped on several seeds and tabulate the stop
reason, the env steps used, the final evaluation and the wall time.

    cd benchmarks && ../.venv/bin/python preset_seeds.py cartpole-a2c --seeds 1 2 3 4 5 6 7 8 9 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from common import machine, print_table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("preset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    from actorcritic import train

    rows, steps = [], []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            s = train(args.preset, f"{tmp}/run", quiet=True, overrides=[f"run.seed={seed}"])
        steps.append(s["env_steps"])
        rows.append([seed, s["stop_reason"], f"{s['env_steps']:,}",
                     f"{s['eval']['mean_return']:.1f}", f"{s['wall_seconds']:.1f} s"])
    rows.append(["median", "", f"{statistics.median(steps):,.0f}", "", ""])
    print_table(f"{args.preset} as shipped ({machine()})",
                ["seed", "stop", "env steps", "final eval", "wall"], rows)


if __name__ == "__main__":
    main()
