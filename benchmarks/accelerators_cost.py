"""What the plain torch path costs on cartpole-a2c, against the opt-in NumPy accelerators.

The preset as shipped (it stops once a greedy 20-episode evaluation every 10k steps reaches
475), once per path and seed, the paths alternating within each seed so that a busy
machine slows them alike. Time to solve excludes the evaluations; steps/s is the run's.

    plain torch          run.numpy_acting=false run.numpy_update=false (the default)
    numpy acting         run.numpy_acting=true
    numpy acting+update  run.numpy_acting=true run.numpy_update=true

Usage: python benchmarks/accelerators_cost.py [--seeds 1 2 3] [--preset cartpole-a2c]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from common import machine, print_table

PATHS = {
    "plain torch (default)": ["run.numpy_acting=false", "run.numpy_update=false"],
    "numpy acting": ["run.numpy_acting=true", "run.numpy_update=false"],
    "numpy acting+update": ["run.numpy_acting=true", "run.numpy_update=true"],
}


def one_run(preset: str, seed: int, sets: list[str]) -> dict:
    from actorcritic import train

    with tempfile.TemporaryDirectory() as tmp:
        s = train(preset, f"{tmp}/run", quiet=True, overrides=[
            f"run.seed={seed}", "run.eval_episodes=0", "run.torch_threads=1", *sets])
    solved = s["stop_reason"] == "stop_eval_return"
    train_seconds = s["wall_seconds"] - s.get("eval_seconds", 0.0)
    return {"solved": solved, "seconds": train_seconds if solved else float("inf"),
            "steps": s["env_steps"], "sps": s["env_steps"] / train_seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--preset", default="cartpole-a2c")
    args = p.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in PATHS}
    for i, seed in enumerate(args.seeds):
        order = list(PATHS)[i % len(PATHS):] + list(PATHS)[:i % len(PATHS)]
        for name in order:
            results[name].append(one_run(args.preset, seed, PATHS[name]))
            r = results[name][-1]
            print(f"seed {seed} {name}: {r['steps']} steps, {r['seconds']:.1f} s, "
                  f"{r['sps']:.0f} steps/s", flush=True)
    plain = results["plain torch (default)"]
    rows = []
    for name, runs in results.items():
        sps = statistics.median(r["sps"] for r in runs)
        solve = statistics.median(r["seconds"] for r in runs)
        rows.append([name, f"{sum(r['solved'] for r in runs)}/{len(runs)}",
                     f"{statistics.median(r['steps'] for r in runs):.0f}", f"{sps:.0f}",
                     f"{sps / statistics.median(r['sps'] for r in plain):.2f}",
                     f"{solve:.1f}",
                     f"{solve / statistics.median(r['seconds'] for r in plain):.2f}"])
    print_table(f"{args.preset}, seeds {args.seeds}, one torch thread ({machine()})",
                ["path", "solved", "median env steps", "median steps/s", "x plain",
                 "median s to solve", "x plain"], rows)


if __name__ == "__main__":
    main()
