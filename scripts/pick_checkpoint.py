"""Which checkpoint of a run to ship: each one's plain and sticky evaluation, side by side.

    python scripts/pick_checkpoint.py RUN_DIR [--episodes 10] [--seed 999] [--within 10000000]
                                              [--min-steps 3000000]

A run's `best` checkpoint is chosen by its in-training evaluations (a few games) or, where
the run did not evaluate, by its training mean, and either can be a poor agent when played
greedily on full games. This plays every checkpoint of the run (`best`, `final` and the
periodic ones) on the same games, plain and, for Atari, with sticky actions (0.25), and
prints a markdown table: env steps (with those of the weights the run started from,
`--init-from`), both means and the sticky share. `--within` marks the checkpoints written
within a budget of env steps; `--min-steps` leaves out the checkpoints written before that
many of the run's own env steps (each evaluation of an Atari game takes minutes).

The default seed (999) is not the one `scripts/zoo_add.py` records its evaluation on
(12345): a checkpoint picked as the best of several on the recorded games would carry that
selection into its recorded score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo_add import STICKY_ACTIONS  # noqa: E402

from actorcritic.agent import load  # noqa: E402
from actorcritic.envs import is_atari  # noqa: E402
from actorcritic.run.checkpoint import SUFFIX, load_checkpoint  # noqa: E402


def run_checkpoints(run_dir: Path, min_steps: int = 0) -> list[Path]:
    """`best`, `final` and the periodic checkpoints of a run written from `min_steps` of its
    own env steps on, in the order they were written."""
    steps = {p: load_checkpoint(p).meta["counters"]["env_steps"]
             for p in (run_dir / "checkpoints").glob(f"*{SUFFIX}")}
    found = sorted((p for p, n in steps.items() if n >= min_steps), key=steps.get)
    if not found:
        raise SystemExit(f"error: no checkpoint in {run_dir}/checkpoints"
                         + (f" from {min_steps:,} env steps on" if min_steps else ""))
    return found


def total_env_steps(meta: dict) -> int:
    """The checkpoint's env steps with those of the weights its run started from."""
    return meta["counters"]["env_steps"] + meta.get("init_from", {}).get("env_steps", 0)


def score(path: Path, episodes: int, seed: int, sticky: float) -> tuple[float, float]:
    result = load(path).evaluate(episodes, seed=seed, sticky_actions=sticky)
    return result["mean_return"], result["std_return"]


def table(run_dir: Path, episodes: int, seed: int, within: int | None,
          min_steps: int = 0) -> list[str]:
    paths = run_checkpoints(run_dir, min_steps)
    atari = is_atari(load_checkpoint(paths[0]).meta["config"]["env"]["id"])
    lines = [f"{episodes} games each, seed {seed}"
             + (", sticky actions 0.25 in the sticky column" if atari else ""), "",
             "| checkpoint | env steps | plain | sticky | sticky share |"
             + (" within budget |" if within else ""),
             "|---|---|---|---|---|" + ("---|" if within else "")]
    for path in paths:
        steps = total_env_steps(load_checkpoint(path).meta)
        plain, plain_std = score(path, episodes, seed, 0.0)
        cells = [path.name, f"{steps:,}", f"{plain:.1f} +- {plain_std:.1f}"]
        if atari:
            sticky, sticky_std = score(path, episodes, seed, STICKY_ACTIONS)
            share = f"{sticky / plain:.0%}" if plain else "n/a"
            cells += [f"{sticky:.1f} +- {sticky_std:.1f}", share]
        else:
            cells += ["n/a (not Atari)", "n/a"]
        if within:
            cells.append("yes" if steps <= within else "no")
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], file=sys.stderr, flush=True)  # progress: evaluations take minutes
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a run directory")
    p.add_argument("--episodes", type=int, default=10, help="games per evaluation")
    p.add_argument("--seed", type=int, default=999,
                   help="seed of the games (not zoo_add's 12345: see above)")
    p.add_argument("--within", type=int, help="a budget of env steps to mark")
    p.add_argument("--min-steps", type=int, default=0,
                   help="leave out checkpoints written before this many of the run's steps")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be at least 1")
    print("\n".join(table(args.run_dir, args.episodes, args.seed, args.within,
                           args.min_steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
