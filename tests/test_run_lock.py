"""A run directory belongs to one live process (real concurrent CLI processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from procs import cli_process, wait_for_metrics

CLI = [sys.executable, "-m", "actorcritic.cli"]
LONG = ["--set", "run.total_steps=10000000", "run.stop_eval_return=null", "run.eval_every=0",
        "run.checkpoint_every=20", "run.eval_episodes=0", "run.log_every=5"]


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("actorcritic: error: ")
    return lines[0]


def test_two_runs_started_together_on_one_dir(tmp_path):
    run_dir = tmp_path / "run"
    args = CLI + ["train", "cartpole-a2c", "--run-dir", str(run_dir), "--quiet",
                  "--set", "run.total_steps=6000", "run.stop_eval_return=null",
                  "run.eval_episodes=2"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    refused = next(err for rc, err in results if rc == 2)
    line = error_line(refused)
    assert "is in use by another actorcritic process" in line or "already exists" in line
    episodes = (run_dir / "episodes.csv").read_text().splitlines()
    assert sum(row.startswith("env_steps,") for row in episodes) == 1
    assert len(list((run_dir / "tb").iterdir())) == 1


def test_a_dir_in_use_refuses_resume_and_overwrite(tmp_path):
    run_dir = tmp_path / "run"
    with cli_process(CLI + ["train", "cartpole-a2c", "--run-dir", str(run_dir)] + LONG) as run:
        wait_for_metrics(run, run_dir, rows=2)
        for extra in (["train", "--resume", str(run_dir)],
                      ["train", "cartpole-a2c", "--run-dir", str(run_dir), "--overwrite"]):
            second = subprocess.run(CLI + extra, capture_output=True, text=True, timeout=120)
            assert second.returncode == 2
            assert f"pid {run.pid}" in error_line(second.stderr)
        assert (run_dir / "config.yaml").is_file() and len(list((run_dir / "tb").iterdir())) == 1
        assert run.poll() is None  # the live run was not disturbed
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=120) == 0


def test_a_lock_left_by_a_killed_run_does_not_block_resume(tmp_path):
    run_dir = tmp_path / "run"
    with cli_process(CLI + ["train", "cartpole-a2c", "--run-dir", str(run_dir)] + LONG) as run:
        wait_for_metrics(run, run_dir, rows=8)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert (run_dir / ".lock").is_file()
    assert list((run_dir / "checkpoints").glob("update_*.safetensors"))
    resumed = subprocess.run(CLI + ["train", "--resume", str(run_dir), "--quiet",
                                    "--set", "run.total_steps=20000"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
