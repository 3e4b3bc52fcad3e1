"""IMPALA: the learner's loss on real trajectories, the local actor processes (lag, restarts,
resume) and the cartpole-impala learning bar."""

from __future__ import annotations

import csv
import multiprocessing
import threading
import time

import numpy as np
import pytest
import torch
from solving import solves_in_one_of_two_seeds

from actorcritic.algorithms.impala import collate, impala_loss
from actorcritic.algorithms.update import rollout_loss
from actorcritic.config import load_config
from actorcritic.samplers.actors import ActorWorker, flat_params, load_flat
from actorcritic.training import build_model, spaces_for, train


def small_cfg(*overrides: str):
    return load_config("cartpole-impala", ["env.backend=sync", "env.num_envs=3",
                                           "algo.num_steps=7", *overrides])


@pytest.mark.parametrize("core", ["none", "lstm"])
def test_on_policy_impala_loss_equals_a2c_loss(core):
    """On its own trajectory (behaviour = target policy) V-trace is the n-step return, so
    the IMPALA loss equals the A2C rollout loss with gae_lambda=1, gradients included. The
    second rollout starts from a non-zero recurrent state, which must travel with the
    trajectory."""
    cfg = small_cfg(f"model.core={core}", "model.core_size=16", "algo.gae_lambda=1.0")
    worker = ActorWorker(cfg.to_dict(), index=0, seed=3)
    try:
        worker.load(0, flat_params(worker.model))
        worker.rollout()
        traj = worker.rollout()
        if core == "lstm":
            assert any(np.abs(s).sum() > 0 for s in traj.start_state)
        model = worker.model
        loss_a, stats_a = impala_loss(model, collate([traj], torch.device("cpu")), cfg.algo)
        grads_a = torch.autograd.grad(loss_a, list(model.parameters()))
        loss_b, stats_b = rollout_loss(model, worker.buf, cfg.algo)
        grads_b = torch.autograd.grad(loss_b, list(model.parameters()))
    finally:
        worker.close()
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-6)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-5)
    assert float(stats_a["diag/importance_ratio"]) == pytest.approx(1.0, abs=1e-5)


def test_collate_concatenates_envs():
    cfg = small_cfg("model.core=gru", "model.core_size=8")
    worker = ActorWorker(cfg.to_dict(), index=0, seed=5)
    try:
        a, b = worker.rollout(), worker.rollout()
    finally:
        worker.close()
    batch = collate([a, b], torch.device("cpu"))
    assert batch["obs"].shape[:2] == (8, 6)
    assert batch["actions"].shape == (7, 6)
    assert batch.start_state[0].shape == (6, 8)
    np.testing.assert_array_equal(batch["rewards"][:, 3:].numpy(), b.arrays["rewards"])


def test_flat_params_round_trip_keeps_channels_last_weights():
    """A Nature CNN keeps its convolution weights channels-last; publishing and loading the
    flat vector must neither fail on those strides nor change the layout or the values."""
    cfg = load_config("pong-a2c-tuned", ["env.num_envs=2"])
    source = build_model(cfg, *spaces_for(cfg))
    target = build_model(cfg, *spaces_for(cfg))
    with torch.no_grad():
        for p in target.parameters():
            p.zero_()
    conv = [p for p in target.parameters() if p.dim() == 4]
    assert conv and all(p.is_contiguous(memory_format=torch.channels_last) and
                        not p.is_contiguous() for p in conv)
    before = [p.data_ptr() for p in target.parameters()]
    flat = flat_params(source)
    assert flat.dtype == np.float32 and flat.size == sum(p.numel() for p in source.parameters())
    load_flat(target, flat)
    for a, b in zip(source.parameters(), target.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [p.data_ptr() for p in target.parameters()] == before
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in conv)
    with pytest.raises(ValueError, match="values"):
        load_flat(target, flat[:-1])


def test_impala_trains_on_pong_with_a_cnn(tmp_path):
    """IMPALA with the Nature CNN (channels-last weights) through the local actor process."""
    summary = train("pong-a2c-tuned", tmp_path / "run", quiet=True, overrides=[
        "algo.name=impala", "algo.num_workers=1", "algo.learner_batch=1", "env.num_envs=4",
        "run.total_steps=400", "run.log_every=5", "run.eval_episodes=0",
        "run.stop_mean_return=null"])
    assert summary["status"] == "finished" and summary["env_steps"] >= 400
    rows = read_metrics(tmp_path / "run")
    losses = [float(r["losses/total"]) for r in rows if r["losses/total"]]
    assert losses and all(np.isfinite(losses))


def read_metrics(run_dir):
    with open(run_dir / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_local_actors_train_log_policy_lag_and_resume(tmp_path):
    run = tmp_path / "run"
    first = train("cartpole-impala", run, quiet=True,
                  overrides=["run.total_steps=6000", "run.log_every=2", "run.eval_episodes=0",
                             "run.stop_mean_return=null", "run.stop_eval_return=null"])
    assert first["status"] == "finished" and first["env_steps"] >= 6000
    lags = [float(r["diag/policy_lag"]) for r in read_metrics(run) if r["diag/policy_lag"]]
    assert lags and min(lags) >= 0 and max(lags) < 20
    assert (run / "checkpoints" / "final.safetensors").is_file()
    resumed = train(resume=run, quiet=True, overrides=["run.total_steps=9000"])
    assert resumed["env_steps"] >= 9000
    assert resumed["updates"] > first["updates"]


def test_dead_actor_process_is_replaced(tmp_path):
    """Kill an actor process mid-run while the other keeps the learner fed: a new one takes
    its place within a second or so (the pool looks at its workers at least once a second,
    not only when the queue runs dry) and training finishes."""
    seen: dict[str, int] = {}

    def actor_1():
        return [p for p in multiprocessing.active_children() if p.name == "impala-actor-1"]

    def killer():
        deadline = time.time() + 120
        while time.time() < deadline and "killed" not in seen:
            procs = actor_1()
            if procs and (tmp_path / "run" / "episodes.csv").is_file():
                procs[0].kill()
                seen["killed"] = procs[0].pid
            time.sleep(0.1)
        while time.time() < deadline:
            fresh = [p.pid for p in actor_1() if p.pid != seen.get("killed")]
            if fresh:
                seen["replacement"] = fresh[0]
                return
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    summary = train("cartpole-impala", tmp_path / "run", quiet=True,
                    overrides=["run.total_steps=40000", "run.eval_episodes=0",
                               "run.max_worker_restarts=1", "run.stop_mean_return=null",
                               "run.stop_eval_return=null"])
    thread.join(5)
    assert "killed" in seen, "the actor process was never seen"
    assert "replacement" in seen, "no new actor process replaced the killed one"
    assert summary["status"] == "finished" and summary["env_steps"] >= 40000
    assert not any(p.name.startswith("impala-actor") for p in multiprocessing.active_children())


@pytest.mark.slow
def test_cartpole_impala_local_solves(tmp_path):
    solves_in_one_of_two_seeds("cartpole-impala", tmp_path, [], bar=475)
