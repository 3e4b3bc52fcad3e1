"""Safe checkpoints: exact resume, atomic writes under SIGKILL, corrupt and malicious files."""

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from procs import children, running, wait_for_metrics

from actorcritic import train
from actorcritic.errors import CheckpointError, ConfigError
from actorcritic.run.checkpoint import (
    CheckpointDir,
    load_checkpoint,
    save_checkpoint,
)

SHORT = ["env.backend=sync", "env.num_envs=4", "algo.lr_schedule=constant",
         "run.eval_episodes=0", "run.log_every=5"]


def final_params(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "final.safetensors").section("model")


@pytest.mark.parametrize("backend,numpy_acting,numpy_update", [
    ("sync", True, True), ("vector", True, True), ("sync", True, False), ("sync", False, False)])
def test_resume_is_exact(tmp_path, backend, numpy_acting, numpy_update):
    """Train N, resume to 2N == 2N uninterrupted (CPU, pure-Python envs; one vector env per
    CartPole or Gymnasium's NumPy-vectorized CartPole; acting and updating in NumPy or
    torch): every parameter."""
    n = 4000
    short = SHORT + [f"env.backend={backend}", f"run.numpy_acting={numpy_acting}",
                     f"run.numpy_update={numpy_update}"]
    full = train("cartpole-a2c", tmp_path / "full", quiet=True,
                 overrides=short + [f"run.total_steps={2 * n}"])
    train("cartpole-a2c", tmp_path / "half", quiet=True, overrides=short + [f"run.total_steps={n}"])
    resumed = train(resume=tmp_path / "half", quiet=True, overrides=[f"run.total_steps={2 * n}"])
    a, b = final_params(tmp_path / "full"), final_params(tmp_path / "half")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed["env_steps"] == full["env_steps"]
    assert resumed["episodes"] == full["episodes"]
    assert resumed["mean_return_100"] == full["mean_return_100"]
    # the episode log of the resumed run continues without a gap or a duplicate
    lines = (tmp_path / "half" / "episodes.csv").read_text().splitlines()
    assert len(lines) - 1 == full["episodes"]


def test_resume_refuses_incompatible_config(tmp_path):
    train("cartpole-a2c", tmp_path / "run", quiet=True, overrides=SHORT + ["run.total_steps=500"])
    with pytest.raises(ConfigError, match="model.hidden_sizes"):
        train(resume=tmp_path / "run", quiet=True, overrides=["model.hidden_sizes=[8]"])


def test_corrupt_truncated_and_foreign_files_give_one_clear_error(tmp_path):
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, {"model.w": torch.ones(1000)}, {"counters": {"updates": 1}})
    assert load_checkpoint(good).tensors["model.w"].sum() == 1000
    data = good.read_bytes()
    cases = {
        "truncated.safetensors": data[: len(data) // 2],
        "empty.safetensors": b"",
        "garbage.safetensors": os.urandom(4096),
        "text.safetensors": b"hello world, not a checkpoint" * 10,
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(path)


class Exploit:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_pickle_checkpoint_is_refused_and_never_executed(tmp_path, suffix):
    marker = tmp_path / "pwned"
    evil = tmp_path / f"evil{suffix}"
    evil.write_bytes(pickle.dumps({"model": Exploit(marker)}))
    torch.save({"model": Exploit(marker)}, tmp_path / "evil_torch.pt")
    for path in (evil, tmp_path / "evil_torch.pt"):
        with pytest.raises(CheckpointError, match="not a safetensors file|not a checkpoint"):
            load_checkpoint(path)
    result = subprocess.run([sys.executable, "-m", "actorcritic.cli", "eval", str(evil)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "actorcritic: error:" in result.stderr
    assert not marker.exists()


def test_init_from_loads_matching_tensors_and_reports_the_rest(tmp_path, capsys):
    train("cartpole-a2c", tmp_path / "a", quiet=True, overrides=SHORT + ["run.total_steps=500"])
    src = load_checkpoint(tmp_path / "a" / "checkpoints" / "final.safetensors").section("model")
    # A different second layer: layer 0 matches, layer 2 and the heads change shape.
    train("cartpole-a2c", tmp_path / "b", overrides=SHORT + ["run.total_steps=8",
          "model.hidden_sizes=[64, 32]", "algo.lr=1e-12"],
          init_from=tmp_path / "a" / "checkpoints" / "final.safetensors")
    out = capsys.readouterr().out
    assert "loaded" in out and "skipped" in out and "actor_trunk.encoder.net.2.weight" in out
    dst = load_checkpoint(tmp_path / "b" / "checkpoints" / "final.safetensors").section("model")
    key = "actor_trunk.encoder.net.0.weight"
    torch.testing.assert_close(dst[key], src[key], atol=1e-6, rtol=0)



def test_init_from_records_where_the_weights_started_through_resumes_and_chains(tmp_path):
    """A budget counts the steps of the weights a run started from: the summary and every
    checkpoint record them, a resume keeps them, and a chain of init-froms adds them up."""
    import json

    first = train("cartpole-a2c", tmp_path / "a", quiet=True,
                  overrides=SHORT + ["run.total_steps=400"])
    assert "init_from" not in first
    source = tmp_path / "a" / "checkpoints" / "final.safetensors"
    overrides = SHORT + ["run.total_steps=200", "run.checkpoint_every=10"]
    second = train("cartpole-a2c", tmp_path / "b", quiet=True, overrides=overrides,
                   init_from=source)
    assert second["init_from"] == {"checkpoint": str(source), "env_steps": first["env_steps"]}
    final_b = tmp_path / "b" / "checkpoints" / "final.safetensors"
    assert load_checkpoint(final_b).meta["init_from"] == second["init_from"]
    resumed = train("cartpole-a2c", resume=tmp_path / "b", quiet=True,
                    overrides=["run.total_steps=400"])
    assert resumed["env_steps"] > second["env_steps"]
    assert resumed["init_from"] == second["init_from"]
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["init_from"] \
        == second["init_from"]
    third = train("cartpole-a2c", tmp_path / "c", quiet=True, overrides=overrides,
                  init_from=final_b)
    assert third["init_from"]["env_steps"] == first["env_steps"] + resumed["env_steps"]


def test_init_from_a_zoo_agent_records_the_command_that_trained_it(tmp_path):
    """An agent's directory may be replaced later (by the agent trained from it): the run
    keeps the name, command, date, commit and training mean of the run that made its
    starting weights, and where that run started in turn (and nothing else of its
    summary), so a chain of runs keeps every link."""
    import json

    train("cartpole-a2c", tmp_path / "a", quiet=True, overrides=SHORT + ["run.total_steps=100"])
    ckpt = load_checkpoint(tmp_path / "a" / "checkpoints" / "final.safetensors")
    agent = tmp_path / "zoo" / "my-agent"
    agent.mkdir(parents=True)
    save_checkpoint(agent / "agent.safetensors", {f"model.{k}": v for k, v in
                                                  ckpt.section("model").items()},
                    {**ckpt.meta, "zoo": {"name": "my-agent", "source": "", "dtype": "float32"}})
    made = {"command": "actorcritic train cartpole-a2c --seed 3", "date": "2026-12-01",
            "commit": "abc1234", "mean_return_100": 31.5,
            "init_from": {"checkpoint": "zoo/my-agent/agent.safetensors", "env_steps": 50,
                          "command": "actorcritic train cartpole-a2c --seed 2"}}
    (agent / "summary.json").write_text(json.dumps({"env_steps": 100, "sps": 9.0, **made}))
    summary = train("cartpole-a2c", tmp_path / "b", quiet=True,
                    overrides=SHORT + ["run.total_steps=100"], init_from=agent)
    assert summary["init_from"] == {"checkpoint": str(agent / "agent.safetensors"),
                                    "env_steps": ckpt.meta["counters"]["env_steps"],
                                    "zoo": "my-agent", **made}

SAVER = """
import sys, torch
from actorcritic.run.checkpoint import save_checkpoint
i = 0
while True:
    i += 1
    save_checkpoint(sys.argv[1], {"model.w": torch.full((4_000_000,), float(i))},
                    {"counters": {"updates": i}})
    print(i, flush=True)
"""


def test_sigkill_during_save_leaves_a_loadable_checkpoint(tmp_path):
    target = tmp_path / "ckpt.safetensors"
    for delay in (0.05, 0.13, 0.29, 0.41):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(target)],
                                stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # one complete save exists
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpt = load_checkpoint(target)
        value = ckpt.tensors["model.w"][0].item()
        assert torch.all(ckpt.tensors["model.w"] == value)
        assert ckpt.meta["counters"]["updates"] == int(value)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_final_checkpoint_and_leaves_no_child(tmp_path, sig):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorcritic.cli", "train", "cartpole-a2c", "--run-dir",
         str(run_dir), "--set", "env.backend=async", "--set", "env.num_envs=2",
         "--set", "run.total_steps=10000000", "--set", "run.checkpoint_every=50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_metrics(proc, run_dir)
    workers = children(proc.pid)
    assert len(workers) >= 2  # the async env workers
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted" in out
    ckpt = load_checkpoint(run_dir / "checkpoints" / "final.safetensors")
    assert ckpt.meta["counters"]["env_steps"] > 0
    time.sleep(0.5)
    assert not [c for c in workers if running(c)]
    latest = CheckpointDir(run_dir).latest()
    assert latest is not None and latest.name == "final.safetensors"


def test_a_run_written_before_the_one_loop_resumes_and_evaluates(tmp_path):
    """tests/data/run-23d0e88: a cartpole-a2c run written at commit 23d0e88, before the
    samplers/learners redesign; its checkpoint still loads, evaluates and resumes."""
    import json
    import shutil

    import actorcritic

    run_dir = tmp_path / "old"
    shutil.copytree(Path(__file__).parent / "data" / "run-23d0e88", run_dir)
    agent = actorcritic.load(run_dir)
    assert agent.evaluate(2, seed=3)["episodes"] == 2
    out = subprocess.run([sys.executable, "-m", "actorcritic.cli", "train", "--resume",
                          str(run_dir), "--quiet", "--set", "run.total_steps=6000"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["env_steps"] >= 6000
