"""Command line: `actorcritic train | eval | plot | presets | config`.

Every error a user can cause prints one line `actorcritic: error: ...` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from actorcritic.errors import RunFailure, UserError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="actorcritic", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a preset (or resume a run)")
    t.add_argument("preset", nargs="?", help="preset name or YAML file (see 'presets')")
    t.add_argument("--seed", type=int, help="random seed (run.seed)")
    t.add_argument("--run-dir", help="where results go (default runs/PRESET-<timestamp>)")
    t.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[],
                   metavar="KEY=VALUE", help="override config keys, e.g. --set algo.lr=3e-4 "
                   "env.num_envs=16 (repeatable)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest "
                   "checkpoint")
    t.add_argument("--init-from", metavar="CHECKPOINT", help="start from the matching tensors "
                   "of a checkpoint (file or run dir)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run dir")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--ray-address", help="Ray cluster to join ('auto' for the local one)")

    e = sub.add_parser("eval", help="evaluate a run or checkpoint on the raw environment")
    e.add_argument("target", help="run dir (its best checkpoint) or checkpoint file")
    e.add_argument("--episodes", type=int, default=10)
    mode = e.add_mutually_exclusive_group()
    mode.add_argument("--greedy", action="store_const", dest="mode", const="greedy")
    mode.add_argument("--stochastic", action="store_const", dest="mode", const="stochastic")
    mode.add_argument("--both", action="store_const", dest="mode", const="both")
    e.add_argument("--video", metavar="DIR", help="write MP4 videos of episodes here")
    e.add_argument("--video-episodes", type=int, default=1)
    e.add_argument("--sticky-actions", type=float, help="repeat-action probability (Atari)")
    e.add_argument("--seed", type=int, default=12345)
    e.add_argument("--json", action="store_true", help="print one JSON object")

    pl = sub.add_parser("plot", help="plot episode returns of one or more runs")
    pl.add_argument("run_dirs", nargs="+")
    pl.add_argument("--out", default=None, help="PNG file (default RUN_DIR/returns.png)")
    pl.add_argument("--title")

    sub.add_parser("presets", help="list the presets")
    c = sub.add_parser("config", help="print the resolved config of a preset")
    c.add_argument("preset")
    c.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[],
                   metavar="KEY=VALUE")
    return p


def cmd_train(args) -> int:
    from actorcritic.run.session import summary_line
    from actorcritic.train import train

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"run.seed={args.seed}")
    if args.ray_address:  # joining a cluster means the Ray backend
        overrides += [f"run.ray_address={args.ray_address}", "run.backend=ray"]
    if args.resume:
        if args.preset:
            raise UserError("give either a preset or --resume RUN_DIR, not both")
        summary = train(resume=args.resume, overrides=overrides, quiet=args.quiet)
    else:
        if not args.preset:
            raise UserError("train needs a preset (see 'actorcritic presets') or --resume")
        summary = train(args.preset, args.run_dir, overrides=overrides, init_from=args.init_from,
                        overwrite=args.overwrite, quiet=args.quiet)
    if not args.quiet:
        print(f"{summary['status']} ({summary['stop_reason']}): {summary_line(summary)}")
        print(f"results in {summary['run_dir']} (summary.json, metrics.csv, tb/, checkpoints/)")
    return 0 if summary["status"] != "failed" else 1


def cmd_eval(args) -> int:
    import torch

    from actorcritic.config import config_from_dict
    from actorcritic.run.checkpoint import load_checkpoint, load_model_exact, resolve_checkpoint
    from actorcritic.run.evaluate import evaluate_policy, record_video
    from actorcritic.train import build_model, spaces_for

    if args.episodes < 1:
        raise UserError("--episodes must be at least 1")
    ckpt = load_checkpoint(resolve_checkpoint(args.target))
    cfg = config_from_dict(ckpt.meta["config"])
    if args.sticky_actions is not None:
        cfg.env.sticky_actions = args.sticky_actions
    torch.set_num_threads(1)
    model = build_model(cfg, *spaces_for(cfg))
    load_model_exact(model, ckpt)
    model.eval()
    modes = {"greedy": [True], "stochastic": [False], "both": [True, False]}[args.mode or "greedy"]
    results = {}
    for greedy in modes:
        results["greedy" if greedy else "stochastic"] = evaluate_policy(
            model, cfg.env, args.episodes, greedy=greedy, seed=args.seed)
    if args.video:
        paths = record_video(model, cfg.env, Path(args.video), episodes=args.video_episodes,
                             greedy=modes[0], seed=args.seed)
        for path, frames, ret in paths:
            print(f"video: {path} ({frames} frames, return {ret:g})",
                  file=sys.stderr if args.json else sys.stdout)
    if args.json:
        out = dict(next(iter(results.values())))
        out["checkpoint"] = str(ckpt.path)
        if len(results) > 1:
            out["modes"] = results
        print(json.dumps(out))
        return 0
    print(f"checkpoint: {ckpt.path}")
    keys = ["mean_return", "std_return", "median_return", "min_return", "max_return",
            "mean_length", "win_rate"]
    names = list(results)
    print(f"{'':16}" + "".join(f"{n:>14}" for n in names))
    for key in keys:
        if key in results[names[0]]:
            print(f"{key:16}" + "".join(f"{results[n][key]:>14.2f}" for n in names))
    print(f"{'episodes':16}" + "".join(f"{results[n]['episodes']:>14}" for n in names))
    return 0


def cmd_plot(args) -> int:
    from actorcritic.run.plots import plot_runs

    out = Path(args.out) if args.out else Path(args.run_dirs[0]) / "returns.png"
    print(plot_runs([Path(d) for d in args.run_dirs], out, args.title))
    return 0


def cmd_presets(args) -> int:
    from actorcritic.config import list_presets

    presets = list_presets()
    width = max(map(len, presets))
    for name, desc in presets.items():
        print(f"{name:{width}}  {desc}")
    return 0


def cmd_config(args) -> int:
    from actorcritic.config import load_config

    print(load_config(args.preset, args.overrides).to_yaml(), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {"train": cmd_train, "eval": cmd_eval, "plot": cmd_plot,
               "presets": cmd_presets, "config": cmd_config}[args.command]
    try:
        return handler(args)
    except UserError as exc:
        print(f"actorcritic: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except RunFailure as exc:
        print(f"actorcritic: error: {exc} (the last good checkpoint was written)",
              file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("actorcritic: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
