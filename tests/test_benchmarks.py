"""The throughput benchmarks still run and print every row.

Timings are not asserted (a shared 2-core machine is too noisy for that); the benchmark
itself measures them. This only keeps the scripts from rotting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_atari_throughput_prints_a_row_for_every_layout():
    out = subprocess.run(
        [sys.executable, "benchmarks/atari_throughput.py", "--seconds", "0.2", "--rounds", "1",
         "--warmup", "1", "--no-sb3", "--no-train", "--processes", "2", "--bfloat16", "--overlap"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split("  ")[0].strip(): line for line in out.stdout.splitlines()
            if line[:1].isalpha() and "%" in line}
    for name in ("ours", "ceiling", "ours, 2 processes", "ceiling, 2 processes",
                 "ours, bfloat16", "ceiling, bfloat16", "ours, 2 processes, bfloat16",
                 "ceiling, 2 processes, bfloat16", "ours, overlapped", "ceiling, overlapped",
                 "ours, overlapped, bfloat16", "ceiling, overlapped, bfloat16",
                 "emulators alone"):
        assert name in rows, f"no row {name!r} in:\n{out.stdout}"
    # Every ours row is set against the synchronous ceiling of its precision, its own
    # ceiling and the packed bound (and the float32 and fastest ceilings).
    for name in ("ours", "ours, 2 processes", "ours, bfloat16", "ours, 2 processes, bfloat16",
                 "ours, overlapped", "ours, overlapped, bfloat16"):
        assert rows[name].count("%") == 5, rows[name]


def test_commit_vs_commit_reads_the_figures_of_both_table_styles():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from commit_vs_commit import row_cells, table_cells

    markdown = ("| envs | SB3 A2C | ours (vector) | vector/SB3 |\n"
                "|------|---------|---------------|------------|\n"
                "| 8    | 14,043  | 77,973        | 5.6x       |\n")
    assert table_cells(markdown) == {("8", "SB3 A2C"): 14043.0,
                                     ("8", "ours (vector)"): 77973.0}
    fixed = (f"{'row':40s} {'steps/s':>8s} {'vs SB3':>7s}\n"
             f"{'ours, overlapped':40s} {1384.4:8.0f} {'1.88x':>7s}\n"
             f"{'emulators alone':40s} {5504:8.0f} {'-':>7s}\n\nafter\n")
    assert row_cells(fixed) == {("ours, overlapped", "steps/s"): 1384.0,
                                ("emulators alone", "steps/s"): 5504.0}


def test_football_engines_prints_a_row_per_scenario():
    out = subprocess.run(
        [sys.executable, "football_engines.py", "--steps", "50", "--rounds", "1",
         "--scenarios", "academy_empty_goal_close,academy_run_to_score"],
        cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| academy_")]
    assert len(rows) == 2 and all(row.count("|") >= 3 for row in rows), out.stdout


def test_sac_vs_sb3_prints_a_row_for_each_precision():
    """Without Stable-Baselines3 (not a test dependency): ours in both precisions."""
    out = subprocess.run(
        [sys.executable, "sac_vs_sb3.py", "--rounds", "1", "--steps", "30",
         "--learning-starts", "30", "--bfloat16", "--no-sb3"],
        cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in out.stdout.splitlines()
            if line.startswith("| ") and line.count("|") >= 5}
    assert set(rows) == {"row", "ours", "ours, model.precision=bfloat16"}, out.stdout
    assert "vs ours" in rows["row"] and "1.00x" in rows["ours"]


def test_sac_update_breakdown_prints_each_variant_and_part():
    out = subprocess.run(
        [sys.executable, "sac_update_breakdown.py", "--rounds", "1", "--steps", "3",
         "--calls", "3", "--no-compile"],
        cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split("|")[1].strip() for line in out.stdout.splitlines()
            if line.startswith("| ")}
    assert {"float32", "bfloat16 matrix products", "critics: target, loss, backward",
            "actor: loss, backward", "Adam step, critics", "Polyak update"} <= rows, out.stdout
    assert "networks under torch.compile" not in rows


def test_subnormals_counts_what_a_plain_count_finds_and_times_both_modes(tmp_path):
    """A short SAC run's final checkpoint with subnormal optimizer moments planted in it:
    the script's count equals a plain count, and it times steps in both modes."""
    import torch

    from actorcritic import train
    from actorcritic.run.checkpoint import load_checkpoint, save_checkpoint

    train("pendulum-sac", tmp_path / "run", quiet=True, overrides=[
        "model.hidden_sizes=[16,16]", "algo.learning_starts=100", "algo.batch_size=16",
        "run.total_steps=200", "run.eval_episodes=0", "run.eval_every=0",
        "run.checkpoint_every=0"])
    path = tmp_path / "run" / "checkpoints" / "final.safetensors"
    ckpt = load_checkpoint(path)
    tensors = dict(ckpt.tensors)
    key = max((k for k in tensors if k.startswith("optim_critic") and k.endswith("exp_avg_sq")),
              key=lambda k: tensors[k].numel())
    planted = tensors[key].clone().flatten()
    planted[::3] = 1e-40
    tensors[key] = planted.reshape(tensors[key].shape)
    save_checkpoint(path, tensors, ckpt.meta)
    expected = sum(int(((v.abs() > 0) & (v.abs() < torch.finfo(torch.float32).tiny)).sum())
                   for k, v in tensors.items() if k.startswith("optim_"))
    moments = sum(v.numel() for k, v in tensors.items() if k.startswith("optim_"))
    assert expected >= planted[::3].numel()
    out = subprocess.run(
        [sys.executable, "subnormals.py", str(path), "--rounds", "1", "--steps", "3"],
        cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{expected:,} of {moments:,}" in out.stdout, out.stdout
    timing = [line for line in out.stdout.splitlines() if line.startswith(f"| {path}")]
    assert len(timing) == 2 and re.search(r"\| \d+\.\d\dx +\|", timing[1]), out.stdout
