"""Multi-seed results: `actorcritic report`, `plot --aggregate`, the win-rate panel, and the
pure statistics behind them (IQM, percentile bootstrap, rolling means, the step grid),
each checked against a plain reference computation."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from actorcritic import load_config, train
from actorcritic.cli import main
from actorcritic.envs.vector import Episode
from actorcritic.run import stats
from actorcritic.run.plots import aggregate_curves, auto_smooth, read_episodes
from actorcritic.run.report import group_runs, load_runs

SEEDS = (1, 2, 3)
PNG = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ plain references

def ref_iqm(xs) -> float:
    """Four copies of every score make the count a multiple of 4: drop the lowest and the
    highest quarter of the copies, average the rest (= fractional weighting)."""
    n = len(xs)
    copies = sorted(x for x in xs for _ in range(4))
    return statistics.fmean(copies[n: 3 * n])


def ref_bootstrap(xs, fn, resamples=2000, seed=0):
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(xs), size=(resamples, len(xs)))
    values = [fn([xs[j] for j in row]) for row in draws]
    return tuple(np.percentile(values, [2.5, 97.5]))


def ref_rolling(xs, window, fn):
    return [fn(xs[max(0, i - window + 1): i + 1]) for i in range(len(xs))]


def ref_value_at(steps, values, at):
    out = float("nan")
    for s, v in zip(steps, values):
        if s <= at:
            out = v
    return out


def png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data[:8] == PNG and path.stat().st_size > 10_000
    return struct.unpack(">I", data[16:20])[0]


# ------------------------------------------------------------------ pure functions

@pytest.mark.parametrize("n", range(1, 13))
def test_iqm_is_the_fractionally_weighted_middle_half(n):
    rng = np.random.default_rng(n)
    xs = rng.normal(size=n) * 10
    assert stats.iqm(xs) == pytest.approx(ref_iqm(list(xs)), rel=1e-12, abs=1e-12)
    assert stats.iqm_weights(n).sum() == pytest.approx(1.0)
    if n % 4 == 0:  # rliable's aggregate_iqm (scipy trim_mean 0.25) trims whole scores
        assert stats.iqm(xs) == pytest.approx(np.mean(np.sort(xs)[n // 4: 3 * n // 4]))


def test_iqm_of_three_weights_the_outer_two_by_a_quarter():
    assert stats.iqm(np.array([0.0, 10.0, 100.0])) == pytest.approx((0 + 10 + 25) / 1.5)


def test_iqm_along_an_axis_matches_column_by_column():
    x = np.random.default_rng(0).normal(size=(5, 7))
    expected = [ref_iqm(list(x[:, j])) for j in range(7)]
    assert np.allclose(stats.iqm(x, axis=0), expected, rtol=1e-12)
    assert np.allclose(stats.iqm(x.T, axis=1), expected, rtol=1e-12)


@pytest.mark.parametrize("stat,fn", [("iqm", ref_iqm), ("mean", statistics.fmean)])
def test_bootstrap_ci_matches_a_loop_over_resamples(stat, fn):
    xs = [3.0, 7.5, 1.0, 12.0, 4.0]
    lo, hi = stats.bootstrap_ci(np.array(xs), stat, resamples=500, seed=3)
    ref_lo, ref_hi = ref_bootstrap(xs, fn, resamples=500, seed=3)
    assert lo == pytest.approx(ref_lo, rel=1e-12) and hi == pytest.approx(ref_hi, rel=1e-12)
    assert lo <= fn(xs) <= hi


def test_bootstrap_band_resamples_whole_runs_across_grid_points():
    curves = np.random.default_rng(1).normal(size=(4, 6))
    lo, hi = stats.bootstrap_ci(curves, "iqm", resamples=300, seed=0, chunk=7)
    for j in range(6):
        ref_lo, ref_hi = ref_bootstrap(list(curves[:, j]), ref_iqm, resamples=300, seed=0)
        assert lo[j] == pytest.approx(ref_lo) and hi[j] == pytest.approx(ref_hi)


@pytest.mark.parametrize("window", [1, 3, 10, 50])
def test_rolling_mean_and_median(window):
    xs = list(np.random.default_rng(window).integers(0, 2, size=23).astype(float))
    for fn in (np.mean, np.median):
        assert np.allclose(stats.rolling(np.array(xs), window, fn), ref_rolling(xs, window, fn))
    assert len(stats.rolling(np.array([]), window)) == 0


def test_default_smoothing_window_grows_with_the_episodes():
    assert [auto_smooth(n) for n in (0, 223, 400, 2000, 10_000)] == [10, 10, 10, 50, 100]


def test_value_at_holds_the_last_episode_and_the_grid_is_the_shared_range():
    steps = np.array([10.0, 20.0, 20.0, 35.0])
    values = np.array([1.0, 2.0, 3.0, 4.0])
    at = np.array([0, 9.9, 10, 15, 20, 34, 35, 99])
    got = stats.value_at(steps, values, at)
    expected = [ref_value_at(steps, values, a) for a in at]
    assert np.array_equal(got, expected, equal_nan=True)
    grid = stats.common_grid([steps, np.array([5.0, 30.0, 50.0])], points=5)
    assert np.array_equal(grid, np.linspace(10.0, 35.0, 5))
    assert stats.common_grid([np.array([1.0, 2.0]), np.array([3.0, 4.0])]) is None


def test_aggregate_curves_are_the_statistic_per_grid_point():
    rng = np.random.default_rng(2)
    curves = [(np.sort(rng.uniform(0, 100, 30)), rng.normal(size=30)) for _ in range(3)]
    grid, values, center, lo, hi = aggregate_curves(curves, "iqm", resamples=200, points=40)
    assert grid[0] == max(s[0] for s, _ in curves) and grid[-1] == min(s[-1] for s, _ in curves)
    for j, g in enumerate(grid):
        column = [ref_value_at(s, v, g) for s, v in curves]
        assert center[j] == pytest.approx(ref_iqm(column))
        assert (lo[j], hi[j]) == pytest.approx(ref_bootstrap(column, ref_iqm, 200))


# ------------------------------------------------------------------ three real seeds

@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    for seed in SEEDS:
        cfg = load_config("cartpole-a2c", ["run.total_steps=5000", "run.eval_episodes=3",
                                           "run.eval_every=0", "run.checkpoint_every=0",
                                           f"run.seed={seed}"])
        train(cfg, root / f"seed{seed}", quiet=True)
    return [root / f"seed{seed}" for seed in SEEDS]


def test_report_figures_match_a_plain_computation(seeds, tmp_path, capsys):
    summaries = [json.loads((d / "summary.json").read_text()) for d in seeds]
    train100 = [s["mean_return_100"] for s in summaries]
    evals = [s["eval"]["mean_return"] for s in summaries]
    walls = [s["wall_seconds"] for s in summaries]
    ci = ref_bootstrap(evals, ref_iqm)

    out = tmp_path / "report.json"
    assert main(["report", *map(str, seeds), "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    (group,) = printed["groups"]
    assert group["group"] == "cartpole-a2c" and group["seeds"] == list(SEEDS)
    assert group["env_steps"]["min"] == min(s["env_steps"] for s in summaries)
    assert group["wall_seconds"]["mean"] == pytest.approx(statistics.fmean(walls))
    assert group["mean_return_100"]["mean"] == pytest.approx(statistics.fmean(train100))
    assert group["mean_return_100"]["std"] == pytest.approx(statistics.stdev(train100))
    ev = group["eval_mean_return"]
    assert ev["mean"] == pytest.approx(statistics.fmean(evals))
    assert ev["std"] == pytest.approx(statistics.stdev(evals))
    assert ev["iqm"] == pytest.approx(ref_iqm(evals))
    assert (ev["ci_low"], ev["ci_high"]) == pytest.approx(ci)

    md = tmp_path / "report.md"
    assert main(["report", *map(str, seeds), str(seeds[0]), "--out", str(md)]) == 0
    text = capsys.readouterr().out
    assert text == md.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| cartpole-a2c"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "3 (1, 2, 3)"  # a directory given twice counts once
    assert cells[4] == f"{statistics.fmean(train100):.2f} ± {statistics.stdev(train100):.2f}"
    assert cells[5] == f"{statistics.fmean(evals):.2f} ± {statistics.stdev(evals):.2f}"
    assert cells[6] == f"{ref_iqm(evals):.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def test_plot_aggregate_and_per_run_give_pngs(seeds, tmp_path, capsys):
    out = tmp_path / "agg.png"
    assert main(["plot", *map(str, seeds), "--aggregate", "--stat", "iqm",
                 "--out", str(out)]) == 0
    assert png_width(out) == 8 * 110  # one panel: no win flags in CartPole
    assert main(["plot", *map(str, seeds), "--aggregate", "--out", str(out)]) == 0
    assert png_width(out) == 8 * 110
    assert main(["plot", *map(str, seeds), "--smooth", "5", "--out", str(out)]) == 0
    assert png_width(out) == 16 * 110  # three panels
    assert read_episodes(seeds[0]).win_curve() is None  # the column is there, empty


def test_groups_split_on_learning_keys_not_on_run_keys(seeds, tmp_path):
    other = tmp_path / "lr"
    shutil.copytree(seeds[0], other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["algo"]["lr"], cfg["run"]["total_steps"] = 0.001, 999
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    runs = load_runs([*seeds, other])
    groups = group_runs(runs, "config")
    assert [len(g.runs) for g in groups] == [3, 1]
    assert [g.label for g in groups] == ["cartpole-a2c algo.lr=0.003",
                                         "cartpole-a2c algo.lr=0.001"]
    assert [len(g.runs) for g in group_runs(runs, "preset")] == [4]
    assert [len(g.runs) for g in group_runs(runs, "parent")] == [3, 1]


# ------------------------------------------------------------------ wins and old files

def write_run(run_dir: Path, rows: list[list], header: list[str]) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(
        {"preset": "football-test", "run": {"seed": 0}, "algo": {"lr": 1e-3}}))
    with open(run_dir / "episodes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([header] + rows)
    return run_dir


def test_win_rate_panel_from_a_win_column(tmp_path):
    rng = np.random.default_rng(0)
    wins = rng.integers(0, 2, size=300).astype(float)
    rows = [[10 * i, i, w, 100, 0, int(w)] for i, w in enumerate(wins)]
    header = ["env_steps", "wall_seconds", "return", "length", "worker", "win"]
    runs = [write_run(tmp_path / f"s{k}", rows, header) for k in range(2)]
    steps, rate = read_episodes(runs[0]).win_curve()
    assert np.allclose(rate, ref_rolling(list(wins), 100, statistics.fmean))
    out = tmp_path / "wins.png"
    assert main(["plot", str(runs[0]), "--out", str(out)]) == 0
    assert png_width(out) == 21 * 110  # four panels: the fourth is the win rate
    assert main(["plot", *map(str, runs), "--aggregate", "--out", str(out)]) == 0
    assert png_width(out) == 15 * 110  # mean-100 and win rate


def test_old_episodes_csv_without_win_column_is_read(tmp_path):
    run = write_run(tmp_path / "old", [[5, 0.1, 1.0, 5, 0], [9, 0.2, 0.0, 4, 0]],
                    ["env_steps", "wall_seconds", "return", "length", "worker"])
    ep = read_episodes(run)
    assert list(ep.returns) == [1.0, 0.0] and ep.win_curve() is None
    # no summary.json: the report reads the unfinished run's episodes
    result = json.loads(_report_json(run))
    assert result["groups"][0]["runs"][0]["status"] == "unfinished"


def _report_json(*runs: Path) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["report", *map(str, runs), "--json"]) == 0
    return buf.getvalue()


def test_resume_rewrites_an_old_header_so_rows_line_up(tmp_path):
    from actorcritic.run.logger import EPISODE_COLUMNS, RunLogger

    run = write_run(tmp_path / "old", [[5, 0.1, 1.0, 5, 0], [9, 0.2, 0.0, 4, 0],
                                       [20, 0.3, 1.0, 6, 0]],
                    ["env_steps", "wall_seconds", "return", "length", "worker"])
    logger = RunLogger(run, resume_step=10)
    logger.episode(12, 0.5, Episode(0, 1.0, 3, {"win": 1.0}))
    logger.episode(14, 0.6, Episode(0, 2.0, 2))
    logger.close()
    with open(run / "episodes.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == EPISODE_COLUMNS and all(len(r) == len(EPISODE_COLUMNS) for r in rows)
    assert [r[0] for r in rows[1:]] == ["5", "9", "12", "14"]  # the row after 10 dropped
    win = EPISODE_COLUMNS.index("win")
    assert [r[win] for r in rows[1:]] == ["", "", "1", ""]
    assert list(read_episodes(run).wins[2:3]) == [1.0]


# ------------------------------------------------------------------ bad input

def test_not_a_run_directory_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    for args in (["report", str(tmp_path / "empty")],
                 ["plot", str(tmp_path / "empty"), "--aggregate"],
                 ["plot", str(tmp_path / "missing")]):
        result = subprocess.run([sys.executable, "-m", "actorcritic.cli", *args],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("actorcritic: error: ")
        assert str(tmp_path) in lines[0]


def test_runs_that_share_no_steps_and_misplaced_options_are_user_errors(tmp_path, capsys):
    header = ["env_steps", "wall_seconds", "return", "length", "worker"]
    a = write_run(tmp_path / "a", [[1, 0, 1.0, 1, 0], [2, 0, 1.0, 1, 0]], header)
    b = write_run(tmp_path / "b", [[5, 0, 1.0, 1, 0], [6, 0, 1.0, 1, 0]], header)
    assert main(["plot", str(a), str(b), "--aggregate", "--out", str(tmp_path / "x.png")]) == 2
    assert "share no env steps" in capsys.readouterr().err
    assert main(["plot", str(a), "--stat", "iqm"]) == 2
    assert main(["report", str(a), "--resamples", "0"]) == 2
    bad = write_run(tmp_path / "bad", [["x", 0, 1.0, 1, 0]], header)
    assert main(["plot", str(bad)]) == 2
    assert "not an episodes log" in capsys.readouterr().err
