"""How reliably a preset learns: train it as shipped on several seeds and tabulate the stop
reason, the env steps used, the final evaluation and the wall time.

    cd benchmarks && ../.venv/bin/python preset_seeds.py cartpole-a2c --seeds 1 2 3 4 5 6 7 8 9 10
    ... preset_seeds.py cartpole-a2c --seeds 1 2 3 --set algo.lr=1e-3 run.total_steps=150000
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
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides, as for actorcritic train")
    args = parser.parse_args()
    from actorcritic import train

    rows, steps = [], []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            s = train(args.preset, f"{tmp}/run", quiet=True, overrides=[*args.overrides,
                                                                       f"run.seed={seed}"])
        steps.append(s["env_steps"])
        rows.append([seed, s["stop_reason"], f"{s['env_steps']:,}",
                     f"{s['eval']['mean_return']:.1f}", f"{s['wall_seconds']:.1f} s"])
    rows.append(["median", "", f"{statistics.median(steps):,.0f}", "", ""])
    what = " ".join(args.overrides) or "as shipped"
    print_table(f"{args.preset} {what} ({machine()})",
                ["seed", "stop", "env steps", "final eval", "wall"], rows)


if __name__ == "__main__":
    main()
