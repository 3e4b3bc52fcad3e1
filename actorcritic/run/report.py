"""`actorcritic report`: results of several runs, grouped over seeds, as a markdown table.

Grouping (`--group-by`): `config` (default) puts runs together whose config.yaml agrees on
the preset name and every env/model/algo key except the speed-only ones in SPEED_KEYS;
`run.*` (seed, total_steps, device, logging, evaluation) never splits a group. Groups
that share a preset are labelled with the keys they differ in. `preset` groups by the
preset name alone, `parent` by the name of the folder holding the run directory.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from actorcritic.errors import RunDirError
from actorcritic.run import stats

GROUP_BY = ("config", "preset", "parent")
SPEED_KEYS = {"env.num_threads", "env.step_timeout", "env.check", "env.eval_backend",
              "model.precision", "algo.reuse_acting_graph"}
LEARNING_SECTIONS = ("env", "model", "algo")


@dataclass
class Run:
    path: Path
    config: dict            # flat: "algo.lr" -> value
    summary: dict           # summary.json, or what episodes.csv says of an unfinished run

    @property
    def preset(self) -> str:
        return str(self.config.get("preset") or "(no preset)")

    @property
    def seed(self) -> int | None:
        return self.config.get("run.seed")


@dataclass
class Group:
    label: str
    runs: list[Run] = field(default_factory=list)


def load_run(path: str | Path) -> Run:
    """A run directory: config.yaml, plus summary.json or (unfinished) episodes.csv."""
    path = Path(path)
    config_file = path / "config.yaml"
    if not config_file.is_file():
        raise RunDirError(f"{path} is not a run directory (no config.yaml); give the "
                          f"folders that 'actorcritic train' wrote")
    try:
        config = flatten(yaml.safe_load(config_file.read_text()) or {})
    except yaml.YAMLError:
        raise RunDirError(f"{config_file} is not valid YAML") from None
    summary_file = path / "summary.json"
    if summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text())
        except json.JSONDecodeError:
            raise RunDirError(f"{summary_file} is not valid JSON") from None
    else:
        summary = _summary_from_episodes(path)
    return Run(path, config, summary)


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Each run once, in the order given (a directory named twice counts once)."""
    seen, runs = set(), []
    for p in paths:
        key = Path(p).resolve()
        if key not in seen:
            seen.add(key)
            runs.append(load_run(p))
    return runs


def flatten(config: dict) -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _summary_from_episodes(path: Path) -> dict:
    file = path / "episodes.csv"
    if not file.is_file():
        raise RunDirError(f"{path} has neither summary.json nor episodes.csv (not a run "
                          f"directory, or one that never started)")
    with open(file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    last = [float(r["return"]) for r in rows[-100:]]
    out = {"status": "unfinished", "env_steps": int(float(rows[-1]["env_steps"])) if rows
           else 0, "wall_seconds": float(rows[-1]["wall_seconds"]) if rows else 0.0,
           "mean_return_100": float(np.mean(last)) if last else None}
    by_scenario: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("scenario"):
            by_scenario.setdefault(r["scenario"], []).append(r)
    if len(by_scenario) > 1:
        out["scenarios"] = {s: _window_of_rows(rs[-100:]) | {"episodes": len(rs)}
                            for s, rs in by_scenario.items()}
    return out


def _window_of_rows(rows: list[dict]) -> dict:
    wins = [float(r["win"]) for r in rows if r.get("win")]
    return {"win_rate_100": float(np.mean(wins)) if wins else None,
            "return_100": float(np.mean([float(r["return"]) for r in rows]))}


def learning_key(run: Run) -> tuple:
    return (run.preset,) + tuple(sorted(
        (k, repr(v)) for k, v in run.config.items()
        if k.split(".")[0] in LEARNING_SECTIONS and k not in SPEED_KEYS))


def group_runs(runs: list[Run], by: str = "config") -> list[Group]:
    """Groups in the order their first run was given (see the module docstring)."""
    keyfn = {"config": learning_key, "preset": lambda r: r.preset,
             "parent": lambda r: r.path.resolve().parent.name}[by]
    groups: dict = {}
    for run in runs:
        groups.setdefault(keyfn(run), Group(label="")).runs.append(run)
    for key, group in groups.items():
        group.label = key[0] if by == "config" else str(key)
    if by == "config":
        _label_by_difference(list(groups.values()))
    return list(groups.values())


def _label_by_difference(groups: list[Group]) -> None:
    """Groups sharing a preset: append the learning keys whose values differ among them."""
    by_preset: dict[str, list[Group]] = {}
    for g in groups:
        by_preset.setdefault(g.label, []).append(g)
    for same in by_preset.values():
        if len(same) < 2:
            continue
        configs = [dict(learning_key(g.runs[0])[1:]) for g in same]
        keys = sorted({k for c in configs for k in c if len({d.get(k) for d in configs}) > 1})
        for g in same:
            flat = g.runs[0].config
            g.label += " " + ", ".join(f"{k}={flat.get(k)}" for k in keys)


# ------------------------------------------------------------------ numbers per group

def _spread(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)) if values else None,
            "std": stats.sample_std(values), "n": len(values)}


def summarize_group(group: Group, resamples: int = stats.RESAMPLES) -> dict:
    """The figures of one group, plain numbers (what --json prints)."""
    runs = group.runs
    per_run = [{"run_dir": str(r.path), "seed": r.seed, "status": r.summary.get("status", "finished"),
                "env_steps": r.summary.get("env_steps"),
                "wall_seconds": r.summary.get("wall_seconds"),
                "mean_return_100": r.summary.get("mean_return_100"),
                "eval_mean_return": (r.summary.get("eval") or {}).get("mean_return"),
                "win_rate_100": r.summary.get("win_rate_100")} for r in runs]

    def column(key: str) -> list[float]:
        return [float(r[key]) for r in per_run if r[key] is not None]

    steps, walls, evals = column("env_steps"), column("wall_seconds"), column("eval_mean_return")
    out = {"group": group.label, "runs": per_run, "seeds": [r.seed for r in runs],
           "env_steps": {"min": min(steps), "max": max(steps), "mean": float(np.mean(steps))},
           "wall_seconds": {"mean": float(np.mean(walls)), "min": min(walls),
                            "max": max(walls)},
           "mean_return_100": _spread(column("mean_return_100")),
           "eval_mean_return": _spread(evals),
           "win_rate_100": _spread(column("win_rate_100"))}
    if evals:
        lo, hi = stats.bootstrap_ci(np.array(evals), "iqm", resamples)
        out["eval_mean_return"].update(iqm=float(stats.iqm(np.array(evals))),
                                       ci_low=float(lo), ci_high=float(hi))
    scenarios = per_scenario(runs)
    if scenarios:
        out["scenarios"] = scenarios
    return out


def per_scenario(runs: list[Run]) -> dict[str, dict]:
    """Runs over several scenarios (football): each scenario's training win rate (last
    100 of its episodes) and final-evaluation win rate and goal difference, across runs."""
    names = list(dict.fromkeys(s for r in runs for s in r.summary.get("scenarios", {})))
    out = {}
    for name in names:
        train = [r.summary.get("scenarios", {}).get(name, {}) for r in runs]
        final = [((r.summary.get("eval") or {}).get("scenarios") or {}).get(name, {})
                 for r in runs]
        out[name] = {key: _spread([float(d[stat]) for d in source
                                   if d.get(stat) is not None])
                     for key, source, stat in (("train_win_rate_100", train, "win_rate_100"),
                                                ("eval_win_rate", final, "win_rate"),
                                                ("eval_goal_difference", final,
                                                 "mean_return"))}
    return out


def report(paths: list[str | Path], group_by: str = "config",
           resamples: int = stats.RESAMPLES) -> dict:
    groups = group_runs(load_runs(paths), group_by)
    return {"groups": [summarize_group(g, resamples) for g in groups],
            "method": {"std": "sample standard deviation across seeds (n - 1)",
                       "iqm": "mean of the middle 50% of the runs' final evaluations, "
                              "boundary runs weighted fractionally",
                       "ci": "95% percentile bootstrap over runs", "resamples": resamples,
                       "bootstrap_seed": stats.BOOTSTRAP_SEED, "group_by": group_by}}


# ------------------------------------------------------------------ markdown

def fmt_num(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def fmt_spread(s: dict, runs: int) -> str:
    if not s["n"]:
        return "–"
    text = fmt_num(s["mean"]) + ("" if s["std"] is None else f" ± {fmt_num(s['std'])}")
    return text if s["n"] == runs else f"{text} (n={s['n']})"


def fmt_steps(s: dict) -> str:
    lo, hi = int(s["min"]), int(s["max"])
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def fmt_wall(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def fmt_iqm(s: dict) -> str:
    if "iqm" not in s:
        return "–"
    return f"{fmt_num(s['iqm'])} [{fmt_num(s['ci_low'])}, {fmt_num(s['ci_high'])}]"


def scenario_table(scenarios: dict[str, dict], runs: int) -> list[str]:
    lines = ["| scenario | train win-100 | final eval win rate | final eval goal difference |",
             "|---|---|---|---|"]
    for name, s in scenarios.items():
        lines.append(f"| {name} | {fmt_spread(s['train_win_rate_100'], runs)} | "
                     f"{fmt_spread(s['eval_win_rate'], runs)} | "
                     f"{fmt_spread(s['eval_goal_difference'], runs)} |")
    return lines


def markdown(result: dict) -> str:
    groups = result["groups"]
    wins = any(g["win_rate_100"]["n"] for g in groups)
    head = ["group", "runs (seeds)", "env steps", "wall time (mean)", "train mean-100",
            "final eval", "eval IQM [95% CI]"] + (["train win-100"] if wins else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    unfinished = []
    for g in groups:
        n = len(g["runs"])
        seeds = ", ".join(str(s) for s in g["seeds"])
        row = [g["group"].replace("|", "\\|"), f"{n} ({seeds})", fmt_steps(g["env_steps"]),
               fmt_wall(g["wall_seconds"]["mean"]), fmt_spread(g["mean_return_100"], n),
               fmt_spread(g["eval_mean_return"], n), fmt_iqm(g["eval_mean_return"])]
        if wins:
            row.append(fmt_spread(g["win_rate_100"], n))
        lines.append("| " + " | ".join(row) + " |")
        unfinished += [f"{r['run_dir']} ({r['status']})" for r in g["runs"]
                       if r["status"] != "finished"]
    for g in groups:
        if g.get("scenarios"):
            lines += ["", f"Per scenario, {g['group']}:", ""] + scenario_table(
                g["scenarios"], len(g["runs"]))
    m = result["method"]
    lines += ["", f"± is the {m['std']}. final eval: each run's last evaluation "
              f"(summary.json eval.mean_return). IQM: {m['iqm']}; {m['ci']} "
              f"({m['resamples']} resamples, seed {m['bootstrap_seed']})."]
    if unfinished:
        lines.append("Not finished (without summary.json the figures come from "
                     "episodes.csv): " + "; ".join(unfinished) + ".")
    return "\n".join(lines) + "\n"
