"""Add the sticky-action evaluation to shipped Atari agents that have none.

    python scripts/zoo_sticky.py zoo/pong-a3c zoo/breakout-a3c

zoo_add.py measures it for every Atari agent it ships; agents shipped before it did show
"not measured" in docs/RESULTS.md. This plays the recorded evaluation's games again (its
number of games, its seed, greedy or sampled as recorded) from the stored tensors, with
sticky actions (repeat-action probability 0.25, ALE v5's default), and writes the result
into eval.json as "sticky_evaluation", with the date and commit it was measured at. The
recorded evaluation and the guard stay as they are. Then run
`python benchmarks/zoo_results.py` for docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo_add import STICKY_ACTIONS, commit, evaluate  # noqa: E402

from actorcritic.envs import is_atari  # noqa: E402


def add_sticky(agent_dir: Path, force: bool) -> str:
    """Measure and record one agent's sticky evaluation; the line to print. Raises
    ValueError (one line) for what is not an Atari zoo agent, or has one without force."""
    path = agent_dir / "eval.json"
    if not path.is_file():
        raise ValueError(f"{agent_dir} is not a zoo agent (no eval.json)")
    env_id = yaml.safe_load((agent_dir / "config.yaml").read_text())["env"]["id"]
    if not is_atari(env_id):
        raise ValueError(f"{agent_dir.name} plays {env_id}, not an Atari game: sticky actions "
                         f"are an Atari protocol")
    record = json.loads(path.read_text())
    if "sticky_evaluation" in record and not force:
        raise ValueError(f"{agent_dir.name} has a sticky evaluation already (--force "
                         f"replaces it)")
    plain = record["evaluation"]
    sticky = {**evaluate(agent_dir, plain["episodes"], plain["seed"], STICKY_ACTIONS),
              "date": datetime.date.today().isoformat(), "commit": commit()}
    record["sticky_evaluation"] = sticky
    path.write_text(json.dumps(record, indent=2) + "\n")
    share = sticky["mean_return"] / plain["mean_return"] if plain["mean_return"] else 0.0
    return (f"{agent_dir.name}: sticky {sticky['mean_return']:.1f} +- "
            f"{sticky['std_return']:.1f} over {plain['episodes']} games, plain "
            f"{plain['mean_return']:.1f}: {share:.0%} of plain")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agent_dirs", type=Path, nargs="+", help="shipped agents (zoo/NAME)")
    p.add_argument("--force", action="store_true", help="replace a sticky evaluation")
    args = p.parse_args(argv)
    for agent_dir in args.agent_dirs:
        try:
            print(add_sticky(agent_dir, args.force), flush=True)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
