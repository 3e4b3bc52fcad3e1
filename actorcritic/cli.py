"""Command line: `actorcritic train | eval | plot | report | export | tune | presets | config`.

Every error a user can cause prints one line `actorcritic: error: ...` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from actorcritic.errors import RunFailure, UserError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="actorcritic", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_train_parser, _eval_parser, _results_parsers, _export_parser, _tune_parser,
                _config_parsers):
        add(sub)
    return p


def _train_parser(sub) -> None:
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


def _eval_parser(sub) -> None:
    e = sub.add_parser("eval", help="evaluate a run, checkpoint or zoo agent on the raw "
                       "environment (full games, raw score)")
    e.add_argument("target", help="run dir (its best checkpoint), checkpoint file, or zoo "
                   "agent (zoo/NAME or NAME)")
    e.add_argument("--episodes", type=int, default=10, help="full episodes to play (default 10)")
    mode = e.add_mutually_exclusive_group()
    mode.add_argument("--greedy", action="store_const", dest="mode", const="greedy",
                      help="play the most likely action (the default, unless the run "
                      "evaluated by sampling: run.eval_greedy false)")
    mode.add_argument("--stochastic", action="store_const", dest="mode", const="stochastic",
                      help="sample actions from the policy")
    mode.add_argument("--both", action="store_const", dest="mode", const="both",
                      help="report greedy and stochastic play side by side")
    e.add_argument("--video", metavar="DIR", help="write MP4 videos of episodes here")
    e.add_argument("--video-episodes", type=int, default=1,
                   help="episodes recorded with --video (default 1)")
    e.add_argument("--sticky-actions", type=float, help="repeat-action probability (Atari)")
    e.add_argument("--seed", type=int, default=12345,
                   help="seed of the evaluation envs (env i gets SEED + i; default 12345)")
    e.add_argument("--json", action="store_true", help="print one JSON object")


def _tune_parser(sub) -> None:
    tu = sub.add_parser("tune", help="search a preset's hyperparameters with Optuna: one "
                        "short training run per trial, pruned on its evaluations")
    tu.add_argument("preset", help="preset name or YAML file (see 'presets')")
    tu.add_argument("--trials", type=int, required=True, help="complete or pruned trials the "
                    "study should have; a continued search runs only the missing ones")
    tu.add_argument("--trial-steps", type=int, metavar="STEPS", help="env steps per trial "
                    "(its run.total_steps; default: the space file's trial_steps, else the "
                    "preset's run.total_steps)")
    tu.add_argument("--space", metavar="FILE", help="search-space YAML (default: the "
                    "algorithm's, actorcritic/presets/search/ALGO.yaml)")
    tu.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[],
                    metavar="KEY=VALUE", help="config overrides fixed for every trial and "
                    "kept in best.yaml (repeatable)")
    tu.add_argument("--seed", type=int, help="run.seed of the trials (default: the preset's)")
    tu.add_argument("--vary-seed", action="store_true", default=None, help="trial N trains "
                    "with seed + N, so that params are judged over seeds, not on one")
    tu.add_argument("--jobs", type=int, help="trials run at once (default: the CPU count; "
                    "each trial then uses one torch thread)")
    tu.add_argument("--tune-dir", help="where the study, trial runs and reports go (default "
                    "tunes/PRESET-<timestamp>); give an existing one to continue its search")
    tu.add_argument("--no-prune", dest="prune", action="store_false", help="run every trial "
                    "to its budget (default: stop trials whose evaluations trail the median)")
    tu.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _config_parsers(sub) -> None:
    sub.add_parser("presets", help="list the presets")
    c = sub.add_parser("config", help="print the resolved config of a preset")
    c.add_argument("preset", help="preset name or YAML file")
    c.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[],
                   metavar="KEY=VALUE", help="override config keys, as for train")


def cmd_train(args) -> int:
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"run.seed={args.seed}")
    if args.ray_address:  # joining a cluster means the Ray backend
        overrides += [f"run.ray_address={args.ray_address}", "run.backend=ray"]
    if args.resume and args.preset:
        raise UserError("give either a preset or --resume RUN_DIR, not both")
    if not args.resume and not args.preset:
        raise UserError("train needs a preset (see 'actorcritic presets') or --resume")
    if not args.resume:  # a bad preset or key answers here, before torch is imported
        from actorcritic.config import load_config
        cfg = load_config(args.preset, overrides)

    from actorcritic.run.session import summary_line
    from actorcritic.training import train

    if args.resume:
        summary = train(resume=args.resume, overrides=overrides, quiet=args.quiet)
    else:
        summary = train(cfg, args.run_dir, init_from=args.init_from, overwrite=args.overwrite,
                        quiet=args.quiet)
    if not args.quiet:
        print(f"{summary['status']} ({summary['stop_reason']}): {summary_line(summary)}")
        print(f"results in {summary['run_dir']} (summary.json, metrics.csv, tb/, checkpoints/)")
    return 0 if summary["status"] != "failed" else 1


def cmd_eval(args) -> int:
    import torch

    from actorcritic.agent import load

    if args.episodes < 1:
        raise UserError("--episodes must be at least 1")
    agent = load(args.target)
    ckpt_path = agent.checkpoint
    torch.set_num_threads(1)
    default = "greedy" if agent.evaluates_greedy else "stochastic"
    modes = {"greedy": [True], "stochastic": [False], "both": [True, False]}[args.mode or default]
    results = {}
    for greedy in modes:
        results["greedy" if greedy else "stochastic"] = agent.evaluate(
            args.episodes, deterministic=greedy, seed=args.seed,
            sticky_actions=args.sticky_actions)
    if args.video:
        paths = agent.record_video(args.video, episodes=args.video_episodes,
                                   deterministic=modes[0], seed=args.seed,
                                   sticky_actions=args.sticky_actions)
        for path, frames, ret in paths:
            print(f"video: {path} ({frames} frames, return {ret:g})",
                  file=sys.stderr if args.json else sys.stdout)
    if args.json:
        out = dict(next(iter(results.values())))
        out["checkpoint"] = str(ckpt_path)
        if len(results) > 1:
            out["modes"] = results
        print(json.dumps(out))
        return 0
    print(f"checkpoint: {ckpt_path}")
    keys = ["mean_return", "std_return", "median_return", "min_return", "max_return",
            "mean_length", "win_rate"]
    names = list(results)
    print(f"{'':16}" + "".join(f"{n:>14}" for n in names))
    for key in keys:
        if key in results[names[0]]:
            print(f"{key:16}" + "".join(f"{results[n][key]:>14.2f}" for n in names))
    print(f"{'episodes':16}" + "".join(f"{results[n]['episodes']:>14}" for n in names))
    for scenario in results[names[0]].get("scenarios", {}):
        cells = [results[n]["scenarios"][scenario] for n in names]
        print(f"{scenario}: " + "; ".join(
            f"{n} win rate {c.get('win_rate', 0.0):.2f}, goal difference "
            f"{c['mean_return']:+.2f} over {c['episodes']} games" for n, c in zip(names, cells)))
    return 0


def _results_parsers(sub) -> None:
    """`plot` and `report`."""
    pl = sub.add_parser("plot", help="plot episode returns of runs, or their aggregate over "
                        "seeds (--aggregate)")
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    pl.add_argument("--out", default=None, help="PNG file (default RUN_DIR/returns.png, "
                    "with --aggregate RUN_DIR/aggregate.png, RUN_DIR the first one given)")
    pl.add_argument("--title", help="title above the panels")
    pl.add_argument("--smooth", type=int, metavar="N", help="episodes in the rolling "
                    "mean drawn over the raw returns (default 1/40 of the episodes of the "
                    "longest run, between 10 and 100)")
    pl.add_argument("--aggregate", action="store_true", help="one curve per group of runs: "
                    "the mean (or IQM) across seeds of the mean of the last 100 episodes, "
                    "with a 95%% bootstrap band over seeds, on the env steps every run of "
                    "the group reached (the shortest run ends the curve)")
    pl.add_argument("--stat", choices=["mean", "iqm"], help="with --aggregate: the curve "
                    "across seeds (default mean; iqm = interquartile mean)")
    _group_options(pl)

    r = sub.add_parser("report", help="markdown table of results over seeds: training "
                       "mean-100, final evaluation, its IQM with a 95%% bootstrap CI")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    r.add_argument("--out", metavar="FILE", help="also write the table (or JSON) to FILE")
    r.add_argument("--json", action="store_true", help="print the figures as JSON instead")
    _group_options(r)


def _group_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--group-by", choices=["config", "preset", "parent"], help="which runs "
                   "are seeds of one setting: config (default) = same preset and same "
                   "env/model/algo keys (run.* such as seed, total_steps, eval never "
                   "split a group); preset = preset name only; parent = the folder "
                   "holding the run dir")
    p.add_argument("--resamples", type=int, metavar="N", help="bootstrap resamples of "
                   "the seeds (default 2000, fixed RNG seed 0)")


def cmd_plot(args) -> int:
    from actorcritic.run.plots import plot_aggregate, plot_runs

    if any(v is not None and v < 1 for v in (args.smooth, args.resamples)):
        raise UserError("--smooth and --resamples must be at least 1")
    dirs = [Path(d) for d in args.run_dirs]
    if not args.aggregate:
        if args.stat or args.group_by or args.resamples:
            raise UserError("--stat, --group-by and --resamples go with --aggregate")
        out = Path(args.out) if args.out else dirs[0] / "returns.png"
        print(plot_runs(dirs, out, args.title, smooth=args.smooth))
        return 0
    out = Path(args.out) if args.out else dirs[0] / "aggregate.png"
    print(plot_aggregate(dirs, out, args.title, stat=args.stat or "mean",
                         group_by=args.group_by or "config",
                         resamples=args.resamples or 2000))
    return 0


def cmd_report(args) -> int:
    from actorcritic.run.report import markdown, report

    if args.resamples is not None and args.resamples < 1:
        raise UserError("--resamples must be at least 1")
    result = report(args.run_dirs, args.group_by or "config", args.resamples or 2000)
    text = json.dumps(result, indent=2) + "\n" if args.json else markdown(result)
    if args.out:
        try:
            Path(args.out).write_text(text)
        except OSError as exc:
            raise UserError(f"cannot write {args.out}: {exc.strerror}") from None
    print(text, end="")
    return 0


def cmd_tune(args) -> int:
    from actorcritic.tune import tune

    summary = tune(args.preset, args.trials, tune_dir=args.tune_dir, space=args.space,
                   trial_steps=args.trial_steps, overrides=args.overrides, seed=args.seed,
                   vary_seed=args.vary_seed, jobs=args.jobs, prune=args.prune,
                   quiet=args.quiet)
    return 0 if "best" in summary else 1


def _export_parser(sub) -> None:
    x = sub.add_parser("export", help="export an agent's policy and value to an ONNX graph "
                       "(one acting step, checked against ONNX Runtime)")
    x.add_argument("target", help="run dir (its best checkpoint), checkpoint file, or zoo "
                   "agent (zoo/NAME or NAME)")
    x.add_argument("--onnx", required=True, metavar="FILE", help="the ONNX file to write "
                   "(replaced if it exists; nothing is written if the check fails)")
    x.add_argument("--opset", type=int, default=18, help="ONNX opset, 18 to 23 (default 18)")


def cmd_export(args) -> int:
    import torch

    from actorcritic.export import export_checkpoint

    torch.set_num_threads(1)
    print("\n".join(export_checkpoint(args.target, args.onnx, args.opset).lines()))
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
    args = build_parser().parse_args(argv)
    handler = {"train": cmd_train, "eval": cmd_eval, "plot": cmd_plot, "report": cmd_report,
               "presets": cmd_presets, "config": cmd_config, "tune": cmd_tune,
               "export": cmd_export}[args.command]
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
