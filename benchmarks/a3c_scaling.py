"""A3C throughput against the number of worker processes (CPU; CartPole unless --preset).

Runs `cartpole-a3c` (or `--preset`) with 1, 2, ... workers (default: up to the core count), each worker with
the same envs and t_max, and prints total env steps per second in steady state: the slope of
env steps over wall time after a warm-up (a quarter of the steps), so the seconds spent
spawning workers (each imports torch) do not count. Learning does not change the cost of a
CartPole step, so the figures compare like with like.

On a machine shared with other jobs the wall-clock rate measures the scheduler's share more
than the code, so the script also samples the CPU time of the worker processes (Linux /proc)
and prints steps per worker CPU-second and the CPU share the workers actually got. With no
other load, the total rate is about workers x (steps per CPU-second) until the cores run out.

    .venv/bin/python benchmarks/a3c_scaling.py                 # 1..cores workers
    .venv/bin/python benchmarks/a3c_scaling.py --workers 1 2 4 --steps-per-worker 150000
    .venv/bin/python benchmarks/a3c_scaling.py --preset pong-a3c-tuned --workers 2 \
        --steps-per-worker 15000 --set algo.reuse_acting_graph=off

Steps per worker CPU-second is the figure to compare on a busy machine; with PYTHONPATH set
to another checkout, this script measures that checkout's code.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _last_steps(run_dir: Path) -> int:
    try:
        with open(run_dir / "metrics.csv", "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 400))
            line = fh.read().decode(errors="replace").strip().splitlines()[-1]
        return int(line.split(",")[0])
    except (OSError, IndexError, ValueError):
        return 0


def _worker_cpu_seconds() -> dict[int, float]:
    """CPU seconds used so far by each live A3C worker child of this process, by pid."""
    me, out = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[1]) == me and comm.startswith("a3c-worker"):
            out[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


class Sampler(threading.Thread):
    """(wall, env steps, worker CPU seconds) every half second while a run goes on. A
    worker's CPU time stays counted after it exits (its last reading is kept)."""

    def __init__(self, run_dir: Path):
        super().__init__(daemon=True)
        self.run_dir, self.samples, self.done = run_dir, [], threading.Event()
        self.cpu: dict[int, float] = {}

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.cpu.update(_worker_cpu_seconds())
            self.samples.append((time.monotonic(), _last_steps(self.run_dir),
                                 sum(self.cpu.values())))


def measure(preset: str, workers: int, steps_per_worker: int, extra: list[str],
            out: Path) -> dict:
    from actorcritic.training import train

    overrides = [f"algo.num_workers={workers}", f"run.total_steps={steps_per_worker * workers}",
                 "run.eval_every=0", "run.eval_episodes=0"] + extra
    run_dir = out / f"w{workers}"
    sampler = Sampler(run_dir)
    sampler.start()
    t0 = time.monotonic()
    try:
        summary = train(preset, run_dir, overrides=overrides, quiet=True,
                        overwrite=True)
    finally:
        sampler.done.set()
        sampler.join()
    total = summary["env_steps"]
    window = [s for s in sampler.samples if 0.25 * total <= s[1] and s[2] > 0]
    if len(window) < 3:
        raise RuntimeError(f"the run with {workers} workers was too short to measure; "
                           f"raise --steps-per-worker")
    (w0, s0, c0), (w1, s1, c1) = window[0], window[-1]
    return {"workers": workers, "sps": (s1 - s0) / (w1 - w0),
            "per_cpu": (s1 - s0) / max(c1 - c0, 1e-9), "share": (c1 - c0) / (w1 - w0),
            "env_steps": total, "wall": time.monotonic() - t0}


def main() -> None:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cartpole-a3c", help="an A3C preset")
    p.add_argument("--workers", type=int, nargs="+", default=list(range(1, cores + 1)))
    p.add_argument("--steps-per-worker", type=int, default=100_000)
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="extra config override, e.g. algo.shared_lock=true")
    p.add_argument("--out", help="run dirs go here (default: a temporary dir)")
    args = p.parse_args()

    load = os.getloadavg()
    print(f"# A3C scaling: {args.preset}, {cores} cores, load average at start "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)"
          + (f", overrides {' '.join(args.overrides)}" if args.overrides else ""))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        results = []
        for w in args.workers:
            results.append(measure(args.preset, w, args.steps_per_worker, args.overrides, out))
            r = results[-1]
            print(f"  {w} workers: {r['sps']:,.0f} steps/s ({r['env_steps']} steps, "
                  f"{r['wall']:.0f}s with start-up)", flush=True)
    base = results[0]["sps"] / results[0]["workers"]
    print("\n| workers | total steps/s | speed-up vs 1 | steps per worker CPU-s | "
          "CPU cores the workers got |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['workers']} | {r['sps']:,.0f} | {r['sps'] / base:.2f}x | "
              f"{r['per_cpu']:,.0f} | {r['share']:.2f} |")
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
