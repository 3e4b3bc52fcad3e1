"""Replay a shipped agent's regression guard, on as many games as asked, and record it.

    python scripts/zoo_guard.py zoo/breakout-a3c --episodes 10

The guard (eval.json's "guard", repeated by tests/test_zoo.py in `make test`) is a short
evaluation with a fixed seed; the test fails when the agent scores below `share` of it.
A guard of 3 games cannot tell a 20% drop from luck on a game whose score varies a lot
(Breakout, SpaceInvaders), so every guard of such a game plays at least 10. This replays
the guard with the stored tensors and writes its result in place, with the date and
commit it was measured at; the recorded evaluation and the agent stay as they are.

    python scripts/zoo_guard.py zoo/breakout-a3c --sticky-actions 0.25

plays the guard with sticky actions (Atari only): for an agent whose greedy plain games
run to the game's 108,000-frame cap (`breakout-a3c` keeps the ball in play there without
scoring, 27k steps a game), a regression shows as well in sticky games, which end:
breakout-a3c's plain guard took 329 s in tests/test_zoo.py, its sticky one 41 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo_add import commit, evaluate  # noqa: E402

from actorcritic.envs import is_atari  # noqa: E402

MIN_SHARE = 0.8  # tests/test_zoo.py: a guard catches a drop of 20%


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agent_dir", type=Path, help="the shipped agent (zoo/NAME)")
    p.add_argument("--episodes", type=int, default=10, help="games of the guard")
    p.add_argument("--seed", type=int, help="the guard's seed (default: the one it has)")
    p.add_argument("--share", type=float, default=MIN_SHARE,
                   help="the share of the guard's mean the test asks for (at least 0.8)")
    p.add_argument("--sticky-actions", type=float, metavar="P",
                   help="Atari: play the guard with this repeat-action probability "
                        "(default: the one it has)")
    args = p.parse_args(argv)
    path = args.agent_dir / "eval.json"
    if not path.is_file():
        print(f"error: {args.agent_dir} is not a zoo agent (no eval.json)", file=sys.stderr)
        return 2
    if args.share < MIN_SHARE:
        print(f"error: --share {args.share} would let a drop of more than 20% pass; "
              f"use at least {MIN_SHARE}", file=sys.stderr)
        return 2
    record = json.loads(path.read_text())
    old = record["guard"]
    seed = old["seed"] if args.seed is None else args.seed
    sticky = old.get("sticky_actions", 0.0) if args.sticky_actions is None else args.sticky_actions
    if not 0.0 <= sticky < 1.0:
        print(f"error: --sticky-actions {sticky} is not a probability in [0, 1)",
              file=sys.stderr)
        return 2
    env_id = json.loads((args.agent_dir / "summary.json").read_text())["env_id"]
    if sticky and not is_atari(env_id):
        print(f"error: --sticky-actions is an Atari setting; {args.agent_dir.name} plays "
              f"{env_id}", file=sys.stderr)
        return 2
    guard = {**evaluate(args.agent_dir, args.episodes, seed, sticky),
             "share": args.share, "date": datetime.date.today().isoformat(),
             "commit": commit()}
    record["guard"] = guard
    path.write_text(json.dumps(record, indent=2) + "\n")
    played = f" with sticky actions {sticky}" if sticky else ""
    print(f"{args.agent_dir.name}: guard {guard['mean_return']:.1f} +- "
          f"{guard['std_return']:.1f} over {args.episodes} games{played} (was "
          f"{old['mean_return']:.1f} over {old['episodes']}), share {args.share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
