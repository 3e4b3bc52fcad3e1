"""Put a trained run's agent into the zoo (zoo/NAME), or refuse if it scores no better.

    python scripts/zoo_add.py RUN_DIR --name pong-a2c-tuned \
        --command "actorcritic train pong-a2c-tuned --seed 4"

What lands in zoo/NAME (see actorcritic/zoo.py): the model tensors of the run's best
checkpoint (float32, or float16 when float32 would not fit in 8 MB; the evaluation below
is of the stored tensors), its config, its summary with the machine, command, date and
commit, the learning curve, and eval.json: the recorded evaluation (full games on the raw score,
>= 10 games, fixed seed; greedy, or sampled where the run evaluated by sampling:
run.eval_greedy false) and the short one the regression guard in
tests/test_zoo.py repeats. An existing agent is replaced only when the new evaluation's
mean is higher, or for Atari when it holds 75% of its score with sticky actions and the
shipped one does not (or with --force).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from actorcritic import zoo
from actorcritic.agent import load
from actorcritic.envs import is_atari
from actorcritic.errors import UserError
from actorcritic.run.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from actorcritic.run.plots import plot_runs

MAX_BYTES = 8 * 1024 * 1024
STICKY_ACTIONS = 0.25  # ALE v5's default repeat-action probability
STICKY_SHARE = 0.75  # issue 33: the sticky evaluation at least this share of the plain one
ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.machine()}, no GPU"


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def model_tensors(ckpt) -> tuple[dict, str]:
    """The checkpoint's model tensors, in float16 when float32 would exceed the limit."""
    tensors = {f"model.{k}": v for k, v in ckpt.section("model").items()}
    size = sum(v.numel() * v.element_size() for v in tensors.values())
    if size < MAX_BYTES - 256 * 1024:
        return tensors, "float32"
    return {k: (v.half() if v.is_floating_point() else v) for k, v in tensors.items()}, "float16"


def window_mean(meta: dict, last: int = 100) -> float | None:
    """The mean of the last `last` (at most 100) training episodes when the checkpoint was
    written."""
    returns = meta.get("window", {}).get("returns", [])[-last:]
    return sum(returns) / len(returns) if returns else None


def last_episodes_mean(run_dir: Path, last: int) -> float | None:
    """The mean return of the run's last `last` training episodes (episodes.csv), the
    figure MuJoCo results quote (rl-baselines3-zoo and CleanRL: the last 10 at 1M steps)."""
    with open(run_dir / "episodes.csv", newline="") as f:
        returns = [float(row["return"]) for row in csv.DictReader(f)][-last:]
    return sum(returns) / len(returns) if returns else None


def evaluate(agent_dir: Path, episodes: int, seed: int, sticky_actions: float = 0.0) -> dict:
    """Full games, greedy or sampled as the run evaluated, with the given repeat-action
    probability whatever the agent trained with (its config may train with sticky actions)."""
    agent = load(agent_dir)
    result = agent.evaluate(episodes, seed=seed, sticky_actions=sticky_actions)
    return {"episodes": episodes, "seed": seed, "greedy": agent.evaluates_greedy,
            "sticky_actions": sticky_actions, "play": play_protocol(agent.cfg.env.id), **result}


def play_protocol(env_id: str) -> str:
    """How the recorded games are played, in words, for eval.json."""
    if is_atari(env_id):
        return "full games, all lives, raw score (no reward clipping)"
    return "full episodes, raw return (no reward scaling)"


def sticky_held(record: dict) -> bool:
    """The sticky evaluation is at least STICKY_SHARE of the plain one (issue 33's bar)."""
    sticky, plain = record.get("sticky_evaluation"), record["evaluation"]["mean_return"]
    return sticky is not None and bool(plain) and sticky["mean_return"] / plain >= STICKY_SHARE


def why_keep(shipped: dict, new: dict) -> str | None:
    """Why the shipped agent stays (None: the new one replaces it). The new one is better
    when it scores higher; for Atari, also when it holds its score with sticky actions and
    the shipped one does not (a higher plain score from a memorised trajectory is not
    better)."""
    if not shipped.get("evaluation"):
        return None
    old, score = shipped["evaluation"]["mean_return"], new["evaluation"]["mean_return"]
    if score > old:
        return None
    if sticky_held(new) and not sticky_held(shipped):
        return None
    return f"it scores {old:g}, this run {score:g}" + (
        ", and this run's sticky evaluation is under 75% of its plain one"
        if "sticky_evaluation" in new and not sticky_held(new) else "")


def write_agent(run_dir: Path, staging: Path, args) -> dict:
    ckpt = load_checkpoint(resolve_checkpoint(args.checkpoint or run_dir))
    tensors, dtype = model_tensors(ckpt)
    meta = {"config": ckpt.meta["config"], "counters": ckpt.meta["counters"],
            "zoo": {"name": args.name, "source": str(ckpt.path), "dtype": dtype}}
    if "init_from" in ckpt.meta:  # the weights it started from, so a later --init-from adds up
        meta["init_from"] = ckpt.meta["init_from"]
    staging.mkdir(parents=True)
    save_checkpoint(staging / zoo.AGENT_FILE, tensors, meta)
    (staging / "config.yaml").write_text(yaml.safe_dump(ckpt.meta["config"], sort_keys=False))
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update({"machine": machine(), "command": args.command,
                    "date": datetime.date.today().isoformat(), "commit": args.commit or commit(),
                    "checkpoint": ckpt.path.name, "checkpoint_env_steps":
                    ckpt.meta["counters"]["env_steps"],
                    "checkpoint_mean_return_100": window_mean(ckpt.meta),
                    "mean_return_last_10": last_episodes_mean(run_dir, 10),
                    "checkpoint_mean_return_last_10": window_mean(ckpt.meta, last=10)})
    summary.pop("run_dir", None)
    if "eval" in summary:  # the run's last parameters, not necessarily the shipped ones
        summary["final_model_eval"] = summary.pop("eval")
    (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_runs([run_dir], staging / "curve.png", title=f"{args.name} (seed {summary['seed']})")
    record = {"evaluation": evaluate(staging, args.episodes, args.seed),
              "guard": {**evaluate(staging, args.guard_episodes, args.guard_seed),
                        "share": args.guard_share}}
    if is_atari(ckpt.meta["config"]["env"]["id"]):  # the protocol of Machado et al. 2018
        record["sticky_evaluation"] = evaluate(staging, args.episodes, args.seed,
                                               STICKY_ACTIONS)
    (staging / "eval.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="the finished run")
    p.add_argument("--name", required=True, help="zoo name (usually the preset)")
    p.add_argument("--command", required=True, help="the exact command that trained it")
    p.add_argument("--checkpoint", help="checkpoint file (default: the run's best)")
    p.add_argument("--episodes", type=int, default=10, help="games of the recorded evaluation")
    p.add_argument("--seed", type=int, default=12345, help="seed of the recorded evaluation")
    p.add_argument("--guard-episodes", type=int, default=10, help="games of the guard's check")
    p.add_argument("--guard-seed", type=int, default=777, help="seed of the guard's check")
    p.add_argument("--guard-share", type=float, default=0.8,
                   help="the guard fails below this share of the recorded guard score")
    p.add_argument("--zoo-root", type=Path, default=zoo.ROOT, help="where the zoo lives")
    p.add_argument("--commit", help="the commit the run trained at (default: HEAD)")
    p.add_argument("--force", action="store_true", help="replace even a better agent")
    args = p.parse_args(argv)
    if args.episodes < 10:
        p.error("--episodes must be at least 10 (the zoo's evaluation bar)")
    target = args.zoo_root / args.name
    staging = args.zoo_root / f".{args.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        record = write_agent(args.run_dir, staging, args)
        kept = why_keep(zoo.read_json(target, "eval.json"), record)
        if kept and not args.force:
            raise UserError(f"{target}: {kept}: kept the zoo agent (--force replaces it)")
        if (staging / zoo.AGENT_FILE).stat().st_size > MAX_BYTES:
            raise UserError(f"{args.name}: the agent file is over 8 MB")
        backup = args.zoo_root / f".{args.name}.old"
        if target.exists():
            target.rename(backup)
        staging.rename(target)
        shutil.rmtree(backup, ignore_errors=True)
    except UserError as exc:
        print(f"zoo_add: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ev = record["evaluation"]
    print(f"{target}: evaluation {ev['mean_return']:.2f} +- {ev['std_return']:.2f} over "
          f"{ev['episodes']} games; guard {record['guard']['mean_return']:.2f} over "
          f"{record['guard']['episodes']} games")
    return 0


if __name__ == "__main__":
    sys.exit(main())
