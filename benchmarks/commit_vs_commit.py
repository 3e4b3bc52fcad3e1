"""Training speed of two source trees, side by side in one run.

    git worktree add /tmp/before 23d0e88
    python benchmarks/commit_vs_commit.py --before /tmp/before --rounds 3
    python benchmarks/commit_vs_commit.py --before /tmp/before --rounds 3 \
        --script "cartpole_throughput.py --steps 100000 --repeats 1" \
        --script "atari_throughput.py --seconds 8 --rounds 1 --no-sb3"

Without --script: each round trains every case once with each tree (alternating, so
machine noise hits both alike), as `python -m actorcritic.cli train ...` with PYTHONPATH
set to the tree, and reads the run's steps/s from its summary.json. Prints the median of
each and the ratio.

With --script: each round runs each benchmark script of each tree (its own copy in
TREE/benchmarks, with PYTHONPATH set to the tree), alternating the trees, and reads every
steps/s cell of the tables it prints (cells that are plain numbers; ratios and shares are
left out). Prints each cell's median over the rounds for both trees and the ratio.
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
# The Atari presets' default paths (what `actorcritic train PRESET` runs), and CartPole's.
CASES = {
    "pong-a2c-tuned (A2C, EnvPool, Nature CNN, replay)": ["pong-a2c-tuned",
                                                          "run.total_steps=40000"],
    "breakout-ppo (PPO, EnvPool, Nature CNN)": ["breakout-ppo", "run.total_steps=40000"],
    "breakout-a3c-tuned (A3C workers, replay)": ["breakout-a3c-tuned", "run.total_steps=40000",
                                                 "run.stop_mean_return=null"],
    "cartpole-a2c (8 envs, the default path)": ["cartpole-a2c", "run.total_steps=200000",
                                                "run.stop_eval_return=null",
                                                "run.eval_every=0"],
}


def steps_per_second(tree: Path, args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "actorcritic.cli", "train", args[0], "--run-dir",
                        str(run_dir), "--quiet", "--set", "run.eval_episodes=0", *args[1:]],
                       env=env, check=True, cwd=tmp)
        return json.loads((run_dir / "summary.json").read_text())["sps"]


def table_cells(text: str) -> dict[tuple[str, str], float]:
    """{(row label, column header): value} of every plain number in the markdown tables
    of `text` (a header is the line above a |---| line)."""
    cells: dict[tuple[str, str], float] = {}
    header: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        row = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if i + 1 < len(lines) and set(lines[i + 1].replace("|", "").strip()) <= set("-: "):
            header = row
            continue
        if set("".join(row)) <= set("-: ") or not header:
            continue
        for name, cell in zip(header[1:], row[1:], strict=False):
            try:
                cells[(row[0], name)] = float(cell.replace(",", ""))
            except ValueError:
                pass  # a ratio (1.6x), a share (72%) or text
    return cells


def row_cells(text: str) -> dict[tuple[str, str], float]:
    """{(row, "steps/s"): value} of a fixed-width table whose header starts with "row"
    and names "steps/s" second (benchmarks/atari_throughput.py): a 40-character name,
    then the figure."""
    cells: dict[tuple[str, str], float] = {}
    in_table = False
    for line in text.splitlines():
        fields = line.split()
        if fields[:2] == ["row", "steps/s"]:
            in_table = True
        elif in_table and len(line) > 41 and line[40] == " ":
            try:
                cells[(line[:40].strip(), "steps/s")] = float(line[40:].split()[0])
            except (ValueError, IndexError):
                in_table = False
        else:
            in_table = False
    return cells


def script_cells(tree: Path, script: str) -> dict[tuple[str, str], float]:
    name, *script_args = script.split()
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, str(tree / "benchmarks" / name), *script_args],
                         env=env, check=True, cwd=tree / "benchmarks", capture_output=True,
                         text=True)
    return {**table_cells(out.stdout), **row_cells(out.stdout)}


def compare_scripts(before_tree: Path, after_tree: Path, scripts: list[str],
                    rounds: int) -> None:
    print(f"| script | row | column | {before_tree.name} | {after_tree.name} | "
          f"after / before |")
    print("|---|---|---|---|---|---|")
    for script in scripts:
        before: dict = {}
        after: dict = {}
        for _ in range(rounds):
            for tree, seen in ((before_tree, before), (after_tree, after)):
                for key, value in script_cells(tree, script).items():
                    seen.setdefault(key, []).append(value)
        for key in before:
            if key not in after:
                continue
            b, a = statistics.median(before[key]), statistics.median(after[key])
            ratio = f"{a / b:.3f}" if b else "-"
            print(f"| {script.split()[0]} | {key[0]} | {key[1]} | {b:,.0f} | {a:,.0f} | "
                  f"{ratio} |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True, help="the other source tree")
    p.add_argument("--after", type=Path, default=ROOT, help="this tree (default)")
    p.add_argument("--rounds", type=int, default=3, help="alternations per case")
    p.add_argument("--case", action="append", default=[],
                   help="run only the cases whose name starts with this (repeatable)")
    p.add_argument("--script", action="append", default=[],
                   help="a benchmark script with its arguments, run from each tree")
    args = p.parse_args()
    if args.script:
        compare_scripts(args.before.resolve(), args.after.resolve(), args.script, args.rounds)
        return 0
    print(f"| case | {args.before.name} steps/s | {args.after.name} steps/s | after / before |")
    print("|---|---|---|---|")
    for name, case in CASES.items():
        if args.case and not name.startswith(tuple(args.case)):
            continue
        before, after = [], []
        for _ in range(args.rounds):
            before.append(steps_per_second(args.before, case))
            after.append(steps_per_second(args.after, case))
        b, a = statistics.median(before), statistics.median(after)
        print(f"| {name} | {b:,.0f} | {a:,.0f} | {a / b:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
