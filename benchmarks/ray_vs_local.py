"""Throughput of IMPALA on the Ray backend vs the local multiprocess backend, same workers.

    python benchmarks/ray_vs_local.py                     # 2 workers, 150k steps per run
    python benchmarks/ray_vs_local.py --workers 1 2 4 --steps 200000 --repeats 2
    python benchmarks/ray_vs_local.py --ray-address auto  # on a running cluster (Ray only)

SPS is measured in steady state: env steps between the first and the last logged point
of metrics.csv over the wall time between them, so process start-up and cluster start-up
do not count. The Ray runs share one private local cluster (127.0.0.1) started once.
The learner's own ceiling (trajectories it can consume per second with the workers idle)
is printed too: adding nodes stops helping once the actors produce more than that.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from actorcritic.config import load_config
from actorcritic.training import train

warnings.filterwarnings("ignore")


def steady_sps(run_dir: Path) -> float:
    with open(run_dir / "metrics.csv") as fh:
        rows = [(int(r["env_steps"]), float(r["wall_seconds"])) for r in csv.DictReader(fh)]
    rows = rows[len(rows) // 10:]   # skip the first tenth: workers still warming up
    (s0, w0), (s1, w1) = rows[0], rows[-1]
    return (s1 - s0) / (w1 - w0)


def one_run(backend: str, workers: int, steps: int, seed: int, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        train("cartpole-impala", run_dir, quiet=True, overrides=[
            f"run.backend={backend}", f"algo.num_workers={workers}", f"run.total_steps={steps}",
            "run.stop_mean_return=null", "run.eval_episodes=0", "run.log_every=5",
            f"run.seed={seed}", *extra])
        return steady_sps(run_dir)


def learner_ceiling(updates: int = 200) -> float:
    """Env steps per second the learner alone can consume (synthetic trajectories)."""
    from actorcritic.algorithms.impala import collate, impala_loss
    from actorcritic.algorithms.update import make_optimizer
    from actorcritic.samplers.actors import ActorWorker

    cfg = load_config("cartpole-impala")
    torch.set_num_threads(1)
    worker = ActorWorker(cfg.to_dict(), 0, seed=1)
    try:
        trajs = [worker.rollout() for _ in range(cfg.algo.learner_batch)]
    finally:
        worker.close()
    model = worker.model
    opt = make_optimizer(model.parameters(), cfg.algo)
    start = time.perf_counter()
    for _ in range(updates):
        loss, _ = impala_loss(model, collate(trajs, torch.device("cpu")), cfg.algo,
                              with_stats=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
    per_update = (time.perf_counter() - start) / updates
    return sum(t.steps for t in trajs) / per_update


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[2])
    p.add_argument("--steps", type=int, default=150_000)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--ray-address", default="", help="join this cluster (default: a private "
                   "local one); the local backend is skipped when set")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()

    from actorcritic.distributed.ray_backend import ray_cluster

    results: dict[tuple[str, int], list[float]] = {}
    if not args.ray_address:
        for w in args.workers:
            results[("local", w)] = [one_run("local", w, args.steps, r + 1, args.extra)
                                     for r in range(args.repeats)]
    cfg = load_config("cartpole-impala", [f"run.ray_address={args.ray_address}"])
    with ray_cluster(cfg) as ray:
        nodes = sum(1 for n in ray.nodes() if n["Alive"])
        for w in args.workers:
            results[("ray", w)] = [one_run("ray", w, args.steps, r + 1, args.extra)
                                   for r in range(args.repeats)]
    ceiling = learner_ceiling()

    print(f"\nIMPALA cartpole-impala, {args.steps} steps per run, {args.repeats} run(s) each, "
          f"Ray cluster: {nodes} node(s)")
    print(f"{'workers':>7} | {'local SPS':>10} | {'ray SPS':>10} | {'ray / local':>11}")
    print("-" * 48)
    for w in args.workers:
        ray_sps = statistics.median(results[("ray", w)])
        local = results.get(("local", w))
        if local:
            local_sps = statistics.median(local)
            print(f"{w:>7} | {local_sps:>10,.0f} | {ray_sps:>10,.0f} | "
                  f"{ray_sps / local_sps:>10.0%}")
        else:
            print(f"{w:>7} | {'-':>10} | {ray_sps:>10,.0f} | {'-':>11}")
    print(f"\nlearner ceiling (one core, workers idle): {ceiling:,.0f} env steps/s")


if __name__ == "__main__":
    main()
