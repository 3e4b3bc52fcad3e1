"""A2C and PPO on Ray (`run.backend=ray`, placement sync): Ray actors each step a slice of
the envs and this process acts and learns. On real clusters on loopback (127.0.0.1 only):
equal to the local synchronous sampler after three updates, and learning CartPole. Every
Ray placement of the registry (these and IMPALA's and a3c_ps's actors) also runs on a
cluster of several nodes whose node holding an actor is removed mid-run."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from procs import cli_process
from test_contract import final_is_finite

from actorcritic import registry
from actorcritic.config import load_config
from actorcritic.distributed.ray_envs import shares
from actorcritic.run.checkpoint import load_checkpoint
from actorcritic.training import train

ray = pytest.importorskip("ray")

from actorcritic.distributed.ray_backend import (  # noqa: E402
    SINGLE_MACHINE_VAR,
    loopback_only,
    ray_cluster,
)

CLI = [sys.executable, "-m", "actorcritic.cli", "train"]
# env.backend=sync seeds env i with run.seed + i on its own, as the Ray actors do; the
# accelerators are off so both runs take the plain torch path.
PLAIN = ["env.backend=sync", "run.numpy_acting=false", "run.numpy_update=false",
         "run.eval_episodes=0", "run.eval_every=0", "algo.num_workers=3"]


def test_shares_are_contiguous_slices_of_the_envs():
    assert shares(8, 3) == [(0, 3), (3, 3), (6, 2)]
    assert shares(2, 5) == [(0, 1), (1, 1)]          # at most one actor per env
    assert shares(4, 1) == [(0, 4)]


# ---------------------------------------------------------------- several nodes

# What a run on each Ray placement does when a node holding one of its actors is removed:
# env actors hold episodes that cannot go on elsewhere, so the run stops (and --resume
# starts new ones); experience workers are replaced on the nodes left. A placement added
# to the registry must say which it does here.
AFTER_NODE_LOSS = {"sync": "stops", "actors": "continues"}
RAY_PLACEMENTS = [(a, p) for a, p, b in registry.requestable()
                  if b == "ray" and registry.is_supported(a, p, b)]


@pytest.fixture
def nodes():
    """A Ray cluster of three nodes on 127.0.0.1: the head, where the run's driver connects
    (no CPUs, so no actor), and two nodes of one CPU each, so a run's two actors land one on
    each. Every server listens on loopback only; the cluster is shut down at the end."""
    from ray.cluster_utils import Cluster

    with loopback_only():
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False})
        try:
            for _ in range(2):
                cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
            cluster.wait_for_nodes()
            yield cluster
        finally:
            cluster.shutdown()


def drain(stream, lines: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    thread.start()
    return thread


def metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.csv"
    return list(csv.DictReader(path.open())) if path.exists() else []


def alive_actors(cluster) -> dict[str, int]:
    """Node id -> how many live actors it holds (read from the cluster's GCS)."""
    table = cluster.global_state.actor_table(None, actor_state_name="ALIVE")
    hosts = [info["Address"]["NodeID"] for info in table.values()]
    return {node: hosts.count(node) for node in hosts}


def wait_until(condition, proc, out: list[str], what: str, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "".join(out) + proc.stderr.read()
        assert time.monotonic() < deadline, f"timed out waiting for {what}: " + "".join(out)
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.parametrize("algo,placement", RAY_PLACEMENTS,
                         ids=[f"{a}-{p}-ray" for a, p in RAY_PLACEMENTS])
def test_a_node_removed_mid_run(nodes, tmp_path, monkeypatch, algo, placement):
    """On a cluster of several nodes on loopback, the node holding one actor is removed
    mid-run (a node with a free CPU was added meanwhile). Env actors: one error line naming
    the actor and its node, exit 4, a final checkpoint with finite parameters, and --resume
    continues on the nodes left. Experience workers: replaced, and the run goes on."""
    from test_ray import LOOPBACK, listening_addresses

    cluster = nodes
    run_dir, out = tmp_path / "run", []
    sets = registry.overrides_for(algo, placement, "ray") + [
        f"run.ray_address={cluster.address}", "algo.num_workers=2", "env.num_envs=4",
        "run.eval_episodes=0", "run.eval_every=0", "run.total_steps=10000000",
        "run.log_every=2", "run.stop_eval_return=null", "run.torch_threads=1",
        "algo.normalize_advantage=false"]
    monkeypatch.setenv(SINGLE_MACHINE_VAR, "0")   # the CLI's driver listens on loopback
    with cli_process(CLI + ["cartpole-a2c", "--run-dir", str(run_dir), "--set", *sets]) \
            as proc:
        drain(proc.stdout, out)
        wait_until(lambda: len(metrics(run_dir)) >= 2, proc, out, "logged updates")
        hosts = alive_actors(cluster)
        doomed = next(n for n in cluster.worker_nodes if hosts.get(n.node_id))
        spare = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        listening = listening_addresses(os.getpid())
        assert listening and set(listening) <= LOOPBACK, listening
        cluster.remove_node(doomed)
        if AFTER_NODE_LOSS[placement] == "continues":
            wait_until(lambda: alive_actors(cluster).get(spare.node_id), proc, out,
                       "a replacement actor on the node left with a free CPU")
            rows = len(metrics(run_dir))
            wait_until(lambda: len(metrics(run_dir)) >= rows + 2, proc, out,
                       "updates after the replacement")
            proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        proc.wait(timeout=300)
    if AFTER_NODE_LOSS[placement] == "continues":
        assert proc.returncode == 0, err
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
        return
    assert proc.returncode == 4, "".join(out) + err
    _stopped_with_one_line_naming(err, doomed.node_id[:8])
    steps = final_is_finite(run_dir)["env_steps"]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    resumed = subprocess.run(CLI + ["--resume", str(run_dir), "--quiet", "--set",
                                    f"run.total_steps={steps + 400}"],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["env_steps"] >= steps + 400


def _stopped_with_one_line_naming(err: str, node: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert re.match(r"actorcritic: error: Ray env actor \d \(envs \d-\d, node 127\.0\.0\.1 "
                    r"[0-9a-f]{8}\) died in ", lines[0]), lines[0]
    assert node in lines[0] and "the last good checkpoint was written" in lines[0], lines[0]


# ---------------------------------------------------------------- one node

@pytest.fixture(scope="module")
def cluster():
    """One private local cluster (started by the backend's own code) for the runs below."""
    with ray_cluster(load_config("cartpole-a2c", ["algo.num_workers=3"])) as handle:
        yield handle
    assert not ray.is_initialized()


def final_model(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "final.safetensors").section("model")


@pytest.mark.parametrize("preset,per_update", [("cartpole-a2c", 8 * 8),
                                               ("cartpole-ppo", 8 * 32)])
def test_ray_equals_the_local_synchronous_sampler_after_three_updates(cluster, tmp_path,
                                                                      preset, per_update):
    """Three actors stepping 3 + 3 + 2 envs give the rollouts of one process stepping 8,
    so the parameters after three updates are equal bit for bit."""
    models = {}
    for backend in ("local", "ray"):
        summary = train(preset, tmp_path / backend, quiet=True, overrides=PLAIN + [
            f"run.backend={backend}", f"run.total_steps={3 * per_update}"])
        assert summary["updates"] == 3 and summary["status"] == "finished"
        models[backend] = final_model(tmp_path / backend)
    assert models["local"].keys() == models["ray"].keys()
    for key, value in models["local"].items():
        assert torch.equal(value, models["ray"][key]), key


def test_cartpole_ppo_on_ray_reaches_475(cluster, tmp_path):
    """The shipped preset (Gymnasium's vectorized CartPole in each actor) on Ray: seed 1
    stops on an evaluation of 500 after 20k steps (about 30 s on 2 busy cores)."""
    summary = train("cartpole-ppo", tmp_path / "run", quiet=True,
                    overrides=["run.backend=ray"])
    assert summary["env_steps"] <= 100_000
    assert summary["eval"]["mean_return"] >= 475, summary
