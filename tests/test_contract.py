"""The contract every algorithm and sampler placement keeps, tried on a real CLI process:

- an environment that raises mid-run: non-zero exit, one clear line, and a final
  checkpoint holding the last good (finite) parameters;
- SIGINT: a final checkpoint, exit 0, and --resume continues from it;
- a NaN from the environment: the run stops, naming the cause.

The Ray placements' runs join one Ray cluster on loopback per test module
(run.ray_address), as runs join a user's cluster: a private cluster started and stopped by
each run would add about 7 s to each of them. test_ray.py and test_ray_vector.py run the
private-cluster path. Killed and hung workers are covered per placement in test_a3c.py,
test_impala.py, test_a2c_parallel.py and test_ray.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from procs import cli_process, wait_for_metrics

from actorcritic import registry
from actorcritic.run.checkpoint import load_checkpoint

TESTS = Path(__file__).resolve().parent
# A faulty run stops within seconds of starting; the a3c_ps-ray one (Ray cluster start
# included) took over 300 s beside two training runs on 2 cores, and 150 s beside one.
CLI_TIMEOUT = 600
CLI = [sys.executable, "-m", "actorcritic.cli", "train"]
COMMON = ["env.id=contract_envs:Contract-v0", "env.backend=sync", "env.num_envs=2",
          "run.eval_episodes=0", "run.log_every=2", "algo.num_steps=5", "run.torch_threads=1",
          "run.checkpoint_every=4", "run.eval_every=0", "run.stop_eval_return=null",
          "algo.normalize_advantage=false"]
# Settings that keep each algorithm's runs small; the placements themselves come from the
# registry, so a placement added there is tried here.
SMALL = {"a3c": ["algo.num_workers=2", "env.num_envs=1"], "impala": ["algo.num_workers=2"],
         "a3c_ps": ["algo.num_workers=2"], "ppo": ["algo.epochs=2", "algo.minibatches=2"]}
# The off-policy algorithms act on a Box: their runs start from pendulum-sac on the same
# env with one continuous action, a small buffer and network.
OFF_POLICY = ["env.id=contract_envs:ContractBox-v0", "algo.learning_starts=10",
              "algo.batch_size=8", "algo.buffer_size=1000", "model.hidden_sizes=[8,8]"]
SMALL.update({name: OFF_POLICY for name, a in registry.ALGORITHMS.items() if a.off_policy})
PLACEMENTS = {
    "-".join([algo, placement] + ([backend] if backend != "local" else [])):
        registry.overrides_for(algo, placement, backend) + SMALL.get(algo, [])
    for algo, placement, backend in registry.requestable()
    if registry.is_supported(algo, placement, backend)
}


def env() -> dict:
    """This process's environment with this folder (the contract envs) on PYTHONPATH."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")]))


def base_preset(algorithm: str) -> str:
    """The preset a contract run of `algorithm` starts from."""
    return "pendulum-sac" if registry.ALGORITHMS[algorithm].off_policy else "cartpole-a2c"


def args(run_dir: Path, placement: str, *sets: str) -> list[str]:
    return CLI + [base_preset(placement.split("-")[0]), "--run-dir", str(run_dir), "--quiet",
                  "--set", *COMMON, *PLACEMENTS[placement], *sets]


@pytest.fixture(scope="module")
def ray_head():
    """The address of a one-node Ray cluster on loopback (4 CPUs, so every placement's
    actors fit), shut down after the module's tests. Its workers import the contract envs
    from this folder, and the runs' drivers listen on loopback too."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from actorcritic.distributed.ray_backend import SINGLE_MACHINE_VAR, loopback_only

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", env()["PYTHONPATH"])  # the cluster's workers inherit it
        with loopback_only():
            cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": 4, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SINGLE_MACHINE_VAR, "0")  # the runs' CLI processes read it
        try:
            yield cluster.address
        finally:
            cluster.shutdown()


@pytest.fixture
def joins(request, placement) -> list[str]:
    """The --set that sends a Ray placement's run to the module's cluster (none otherwise).
    Taken on demand, so only the Ray placements start it."""
    if not placement.endswith("-ray"):
        return []
    return [f"run.ray_address={request.getfixturevalue('ray_head')}"]


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("actorcritic: error: ")
    return lines[0]


def final_is_finite(run_dir: Path) -> dict:
    final = load_checkpoint(run_dir / "checkpoints" / "final.safetensors")
    model = final.section("model")
    assert model and all(torch.isfinite(t).all() for t in model.values())
    return final.meta["counters"]


@pytest.mark.slow
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_env_error_mid_run_keeps_the_last_good_parameters(tmp_path, placement, joins):
    run_dir = tmp_path / "run"
    out = subprocess.run(args(run_dir, placement, "run.total_steps=100000",
                              "env.kwargs={fault: raise, after: 60}", *joins),
                         capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env())
    assert out.returncode != 0
    line = error_line(out.stderr)
    assert "sensor unplugged" in line and "last good checkpoint was written" in line, line
    assert final_is_finite(run_dir)["env_steps"] > 0
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


@pytest.mark.slow
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_nan_from_the_env_names_its_cause(tmp_path, placement, joins):
    run_dir = tmp_path / "run"
    out = subprocess.run(args(run_dir, placement, "run.total_steps=100000",
                              "env.kwargs={fault: nan_obs, after: 60}", *joins),
                         capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env())
    assert out.returncode == 3, out.stderr
    assert "non-finite observation from the environment" in error_line(out.stderr)
    final_is_finite(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_sigint_writes_a_final_checkpoint_and_resume_continues(tmp_path, placement,
                                                              monkeypatch, joins):
    run_dir = tmp_path / "run"
    monkeypatch.setenv("PYTHONPATH", env()["PYTHONPATH"])
    with cli_process(args(run_dir, placement, "run.total_steps=10000000", *joins)) as proc:
        wait_for_metrics(proc, run_dir, rows=3, timeout=240)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    steps = final_is_finite(run_dir)["env_steps"]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    resumed = subprocess.run(CLI + ["--resume", str(run_dir), "--quiet", "--set",
                                    f"run.total_steps={steps + 400}"],
                             capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env())
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["env_steps"] >= steps + 400
