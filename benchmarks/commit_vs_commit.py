"""End-to-end training speed of two source trees, side by side in one run.

    git worktree add /tmp/before 23d0e88
    python benchmarks/commit_vs_commit.py --before /tmp/before --rounds 3

Each round trains every case once with each tree (alternating, so machine noise hits both
alike), as `python -m actorcritic.cli train ...` with PYTHONPATH set to the tree, and
reads the run's steps/s from its summary.json. Prints the median of each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "cartpole-a2c (vector, 8 envs, NumPy path)": ["cartpole-a2c", "run.total_steps=200000",
                                                  "run.stop_eval_return=null",
                                                  "run.eval_every=0"],
    "pong-a2c-tuned (EnvPool, Nature CNN, replay)": ["pong-a2c-tuned", "run.total_steps=40000"],
}


def steps_per_second(tree: Path, args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "actorcritic.cli", "train", args[0], "--run-dir",
                        str(run_dir), "--quiet", "--set", "run.eval_episodes=0", *args[1:]],
                       env=env, check=True, cwd=tmp)
        return json.loads((run_dir / "summary.json").read_text())["sps"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True, help="the other source tree")
    p.add_argument("--after", type=Path, default=ROOT, help="this tree (default)")
    p.add_argument("--rounds", type=int, default=3, help="alternations per case")
    args = p.parse_args()
    print(f"| case | {args.before.name} steps/s | {args.after.name} steps/s | after / before |")
    print("|---|---|---|---|")
    for name, case in CASES.items():
        before, after = [], []
        for _ in range(args.rounds):
            before.append(steps_per_second(args.before, case))
            after.append(steps_per_second(args.after, case))
        b, a = statistics.median(before), statistics.median(after)
        print(f"| {name} | {b:,.0f} | {a:,.0f} | {a / b:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
