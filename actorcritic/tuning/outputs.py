"""The reports of a search, rewritten after every trial: trials.csv, trials.png, best.yaml."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from actorcritic.config import load_config
from actorcritic.run.checkpoint import write_atomic
from actorcritic.tuning.space import decode_params, override
from actorcritic.tuning.trial import read_summary
from actorcritic.tuning.tunedir import TuneSettings

COLUMNS = ["number", "state", "value", "env_steps", "wall_seconds", "seed", "run_dir", "note"]


def trial_rows(trials: list[Any], space_keys: list[str]) -> list[dict[str, Any]]:
    """One row per Optuna trial: state, objective, params and where its run is."""
    reruns = {t.user_attrs["rerun_of"]: t.number for t in trials if "rerun_of" in t.user_attrs}
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state.name == "WAITING":  # queued, not yet run
            continue
        a = t.user_attrs
        note = a.get("error", "")
        if t.number in reruns:
            note = (note + "; " if note else "") + f"re-run as trial {reruns[t.number]}"
        steps = a.get("env_steps")
        if steps is None and a.get("run_dir"):  # a trial kept from a killed search
            steps = (read_summary(Path(a["run_dir"])) or {}).get("env_steps")
        row = {"number": t.number, "state": t.state.name, "value": t.value,
               "env_steps": steps, "wall_seconds": a.get("wall_seconds"),
               "seed": a.get("seed"), "run_dir": a.get("run_dir", ""), "note": note}
        params = decode_params(t.params)
        row.update({k: params.get(k) for k in space_keys})
        rows.append(row)
    return rows


def write_trials_csv(path: Path, rows: list[dict[str, Any]], space_keys: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS + space_keys)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in COLUMNS + space_keys])
    write_atomic(Path(path), buf.getvalue().encode())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def plot_trials(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """The objective per trial (pruned ones at their last evaluation) and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for state, style in (("COMPLETE", dict(marker="o", color="tab:blue")),
                         ("PRUNED", dict(marker="x", color="tab:gray"))):
        pts = [(r["number"], r["value"]) for r in rows if r["state"] == state
               and r["value"] is not None]
        if pts:
            ax.scatter(*zip(*pts), label=state.lower(), zorder=3, **style)
    best, line = None, []
    for r in rows:
        if r["state"] == "COMPLETE" and r["value"] is not None:
            best = r["value"] if best is None else max(best, r["value"])
        if best is not None:
            line.append((r["number"], best))
    if line:
        ax.step(*zip(*line), where="post", color="tab:orange", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("evaluation mean return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def trial_overrides(settings: TuneSettings, params: dict[str, Any], seed: int,
                    tuning_only: list[str]) -> list[str]:
    """The --set list of one trial: fixed overrides, the trial's own run settings, its seed
    and its params (later ones win)."""
    return [*settings.overrides, *tuning_only, f"run.seed={seed}",
            *(override(k, v) for k, v in params.items())]


def write_best(path: Path, settings: TuneSettings, trial: Any, tune_dir: Path) -> None:
    """A complete config: the preset, the fixed overrides and the best trial's params and
    seed, with the preset's own run.total_steps (not the trial budget)."""
    params = decode_params(trial.params)
    cfg = load_config(settings.preset, trial_overrides(settings, params,
                                                       trial.user_attrs["seed"], []))
    shown = ", ".join(f"{k}={_cell(v)}" for k, v in params.items())
    cfg.description = f"{cfg.preset} tuned by actorcritic tune (trial {trial.number}: {shown})"
    header = (f"# Best trial of the search in {tune_dir}: trial {trial.number}, evaluation mean "
              f"return {trial.value:g}.\n# run.total_steps ({cfg.run.total_steps}) is the "
              f"preset's (and --set's), not the trial budget ({settings.trial_steps}). To "
              f"repeat\n# the trial itself: actorcritic train {path} --set "
              f"{' '.join(trial.user_attrs.get('tuning_only', []))}\n")
    write_atomic(Path(path), (header + cfg.to_yaml()).encode())
