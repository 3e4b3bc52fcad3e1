"""Run outputs: TensorBoard events, CSV, summary, plot, eval CLI and MP4 video."""

import csv
import json
import subprocess
import sys

import pytest

from actorcritic import train
from actorcritic.run.logger import SCALARS

REQUIRED = [
    "charts/episode_return", "charts/episode_length", "charts/mean_return_100",
    "charts/median_return_100", "charts/sps", "charts/lr", "losses/policy", "losses/value",
    "losses/entropy", "losses/total", "diag/explained_variance", "diag/grad_norm",
    "diag/grad_max", "diag/grad_var", "diag/advantage_mean", "diag/advantage_std",
    "diag/value_mean", "diag/value_target_mean",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("outputs") / "run"
    summary = train("cartpole-a2c", run_dir, quiet=True, overrides=[
        "run.total_steps=6000", "run.log_every=5", "run.eval_episodes=3",
        "run.eval_every=3000", "run.eval_during_episodes=2", "run.checkpoint_every=10",
        "run.keep_checkpoints=2"])
    return run_dir, summary


def cli(*args):
    return subprocess.run([sys.executable, "-m", "actorcritic.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_summary_and_config_files(run):
    run_dir, summary = run
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk == summary
    for key in ("env_steps", "wall_seconds", "sps", "mean_return_100", "episodes"):
        assert key in on_disk
    assert on_disk["env_steps"] >= 6000
    assert {"mean_return", "std_return", "episodes"} <= set(on_disk["eval"])
    assert on_disk["eval"]["episodes"] == 3
    text = (run_dir / "config.yaml").read_text()
    assert "total_steps: 6000" in text and "id: CartPole-v1" in text


def test_tensorboard_events_have_every_scalar(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = run
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    missing = [t for t in REQUIRED + ["eval/mean_return"] if t not in tags]
    assert not missing, missing
    grad_norms = [e.value for e in acc.Scalars("diag/grad_norm")]
    assert grad_norms and all(v >= 0 for v in grad_norms)


def test_metrics_csv_has_the_same_scalars(run):
    run_dir, _ = run
    with open(run_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert set(REQUIRED) <= set(rows[0]) and list(rows[0])[2:] == SCALARS
    training_rows = [r for r in rows if r["losses/total"] != ""]
    assert all(training_rows[-1][k] != "" for k in REQUIRED)
    assert any(r["eval/mean_return"] != "" for r in rows)
    episodes = list(csv.DictReader(open(run_dir / "episodes.csv", newline="")))
    assert len(episodes) == json.loads((run_dir / "summary.json").read_text())["episodes"]


def test_checkpoints_periodic_best_final(run):
    run_dir, _ = run
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "final.safetensors" in names and "best.safetensors" in names
    periodic = [n for n in names if n.startswith("update_")]
    assert len(periodic) == 2  # keep_checkpoints
    assert not [n for n in names if n.startswith(".")]  # no temporary files left


def test_plot_writes_a_png(run, tmp_path):
    run_dir, _ = run
    out = tmp_path / "cmp.png"
    result = cli("plot", str(run_dir), str(run_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_eval_json_and_both_modes(run):
    run_dir, _ = run
    result = cli("eval", str(run_dir), "--episodes", "4", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["episodes"] == 4 and {"mean_return", "std_return"} <= set(data)
    result = cli("eval", str(run_dir), "--episodes", "3", "--both", "--json")
    data = json.loads(result.stdout)
    assert set(data["modes"]) == {"greedy", "stochastic"}
    assert all(m["episodes"] == 3 for m in data["modes"].values())
    result = cli("eval", str(run_dir), "--episodes", "2", "--both")
    assert result.returncode == 0 and "greedy" in result.stdout and "stochastic" in result.stdout
    assert "mean_return" in result.stdout


def test_video_is_a_real_mp4(run, tmp_path):
    import imageio.v2 as imageio

    run_dir, _ = run
    result = cli("eval", str(run_dir), "--episodes", "1", "--video", str(tmp_path / "vid"),
                 "--video-episodes", "2")
    assert result.returncode == 0, result.stderr
    videos = sorted((tmp_path / "vid").glob("*.mp4"))
    assert [v.name for v in videos] == ["episode_000.mp4", "episode_001.mp4"]
    reported = [int(line.split("(")[1].split()[0]) for line in result.stdout.splitlines()
                if line.startswith("video:")]
    assert len(reported) == len(videos) == 2, result.stdout  # one "video:" line per file
    for video, frames_written in zip(videos, reported, strict=True):
        reader = imageio.get_reader(video, format="ffmpeg")
        frames = [frame for frame in reader]
        reader.close()
        assert len(frames) == frames_written >= 2  # the reset frame plus one per step
        assert frames[0].shape == (400, 600, 3)  # CartPole's render size
        assert frames[0].std() > 0  # a picture, not a blank frame


def test_existing_run_dir_is_never_overwritten(run, tmp_path):
    run_dir, summary = run
    before = (run_dir / "summary.json").read_text()
    result = cli("train", "cartpole-a2c", "--run-dir", str(run_dir), "--quiet",
                 "--set", "run.total_steps=100")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (run_dir / "summary.json").read_text() == before
