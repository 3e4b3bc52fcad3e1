"""A3C: the gradient hand-over, learning CartPole with 2 worker processes, and faults (a killed
worker, a hung worker past the restart limit, Ctrl-C) with real processes via the CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from procs import children, cli_process

from actorcritic.algorithms.hogwild import a3c_update, pull_params
from actorcritic.algorithms.shared_optim import SharedAdam
from actorcritic.config import load_config
from actorcritic.run.checkpoint import load_checkpoint, load_model_exact

CLI = [str(Path(sys.executable).parent / "actorcritic")]
if not Path(CLI[0]).exists():
    CLI = [sys.executable, "-m", "actorcritic.cli"]


# ---------------------------------------------------------------- the update, in one process

def test_every_update_hands_its_own_gradients_to_the_global_model():
    """Global model + SharedAdam driven through a local copy must track a plain model + plain
    Adam exactly, update after update (the public-code bug keeps the first update's grads)."""
    from actorcritic.models.actor_critic import ActorCritic

    cfg = load_config("cartpole-a3c")
    import gymnasium as gym

    obs_space = gym.spaces.Box(-1.0, 1.0, (4,))
    act_space = gym.spaces.Discrete(2)
    torch.manual_seed(0)
    global_model = ActorCritic(obs_space, act_space, cfg.model)
    global_model.share_memory()
    local = ActorCritic(obs_space, act_space, cfg.model)
    reference = ActorCritic(obs_space, act_space, cfg.model)
    reference.load_state_dict(global_model.state_dict())
    shared_opt = SharedAdam(global_model.parameters(), lr=1e-2)
    plain_opt = torch.optim.Adam(reference.parameters(), lr=1e-2)
    global_params = list(global_model.parameters())

    def loss_of(model, k):
        g = torch.Generator().manual_seed(k)
        obs = torch.randn(5, 3, 4, generator=g)
        params, values, _ = model(obs, torch.zeros(5, 3, dtype=torch.bool), ())
        return params.pow(2).mean() + (values - k).pow(2).mean()

    for k in range(4):
        pull_params(local, global_model)
        a3c_update(local, global_params, shared_opt, loss_of(local, k), {}, max_grad_norm=0.5)
        for lp, gp in zip(local.parameters(), global_params, strict=True):
            assert gp.grad is lp.grad  # this update's gradient, not a stale one
        plain_opt.zero_grad(set_to_none=True)
        loss_of(reference, k).backward()
        torch.nn.utils.clip_grad_norm_(list(reference.parameters()), 0.5)
        plain_opt.step()
        for gp, rp in zip(global_params, reference.parameters(), strict=True):
            assert torch.equal(gp, rp), f"global model diverged from plain Adam at update {k}"


@pytest.mark.parametrize("shared_trunk", [True, False])
def test_worker_learns_through_its_replayed_acting_passes(shared_trunk):
    """An A3C worker on a CNN replays the forward passes it acted with (the local copy does
    not change during a rollout): the shared optimizer's step is the one of recomputing the
    rollout, for the shared Nature CNN of pong-a3c-tuned and breakout-a3c's two CNNs."""
    from actorcritic.algorithms.hogwild import HogwildLearner
    from actorcritic.algorithms.reward_scaling import ConstantScale
    from actorcritic.algorithms.shared_optim import make_shared_optimizer
    from actorcritic.algorithms.update import reuses_acting_graph
    from actorcritic.envs import make_vector_env
    from actorcritic.models.actor_critic import ActorCritic
    from actorcritic.samplers.rollout import Carry, RolloutBuffer
    from actorcritic.samplers.sync import SyncSampler

    cfg = load_config("pong-a3c-tuned", env={"num_envs": 2}, run={"log_every": 1},
                      model={"shared_trunk": shared_trunk, "precision": "float32"})
    envs = make_vector_env(cfg.env, seed=3, mode="train")
    try:
        spaces = envs.single_observation_space, envs.single_action_space
        learners = []
        for _ in range(2):  # replayed, recomputed: the same start
            torch.manual_seed(0)
            global_model = ActorCritic(*spaces, cfg.model)
            global_model.share_memory()
            optimizer = make_shared_optimizer(global_model.parameters(), cfg.algo)
            learners.append(HogwildLearner(ActorCritic(*spaces, cfg.model), global_model,
                                           optimizer, cfg))
        replayed, recomputed = learners
        assert reuses_acting_graph(replayed.local, cfg.algo)
        replayed.pull()
        buf = RolloutBuffer(cfg.algo.num_steps, 2, *spaces)
        carry = Carry.start(envs.reset(seed=3), replayed.local, torch.device("cpu"))
        sampler = SyncSampler(envs, replayed.local, carry, buf, cfg, True, ConstantScale(1.0))
        for update in range(3):
            replayed.pull()
            recomputed.pull()
            collected = sampler.next(True)
            assert collected.rollout().acted is not None
            stats_a = replayed.update(collected, update, True)
            # the same rollout without its acting passes: the learner runs the forward again
            collected.rollout().acted = None
            stats_b = recomputed.update(collected, update, True)
            for key in ("losses/policy", "losses/value", "diag/grad_norm"):
                torch.testing.assert_close(stats_a[key], stats_b[key], rtol=1e-4, atol=1e-6)
            pairs = zip(replayed.global_params, recomputed.global_params, strict=True)
            for a, b in pairs:  # float rounding only: the kernels differ with the batch size
                assert (a - b).norm() <= 1e-5 * b.norm() + 1e-7
    finally:
        envs.close()


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_one_worker_steps_exactly_as_a2c(optimizer):
    """One A3C worker alone (copy the global model, act, learn on the copy, hand over the
    gradients, step the shared optimizer) is A2C on the same envs: the global parameters
    equal A2C's bit for bit after every update. What A3C adds on top is only asynchrony:
    a run that learns with A2C and not with A3C differs by its other workers' steps."""
    from actorcritic.algorithms.a2c import TorchLearner
    from actorcritic.algorithms.hogwild import HogwildLearner
    from actorcritic.algorithms.reward_scaling import ConstantScale
    from actorcritic.algorithms.shared_optim import make_shared_optimizer
    from actorcritic.algorithms.update import make_optimizer
    from actorcritic.envs import make_vector_env
    from actorcritic.models.actor_critic import ActorCritic
    from actorcritic.samplers.rollout import Carry, RolloutBuffer
    from actorcritic.samplers.sync import SyncSampler

    cfg = load_config("pong-a3c-tuned", env={"num_envs": 2}, run={"log_every": 1},
                      algo={"optimizer": optimizer})
    cpu = torch.device("cpu")

    def placement(a3c: bool):
        envs = make_vector_env(cfg.env, seed=3, mode="train")
        spaces = envs.single_observation_space, envs.single_action_space
        torch.manual_seed(0)
        model = ActorCritic(*spaces, cfg.model)
        if a3c:
            model.share_memory()
            learner = HogwildLearner(ActorCritic(*spaces, cfg.model), model,
                                     make_shared_optimizer(model.parameters(), cfg.algo), cfg)
            learner.pull()
            actor = learner.local
        else:
            learner = TorchLearner(model, make_optimizer(model.parameters(), cfg.algo), cfg, cpu)
            actor = model
        buf = RolloutBuffer(cfg.algo.num_steps, 2, *spaces, cpu)
        torch.manual_seed(1)
        carry = Carry.start(envs.reset(seed=3), actor, cpu)
        sampler = SyncSampler(envs, actor, carry, buf, cfg, True, ConstantScale(1.0))
        return envs, model, learner, sampler

    def flat(model) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    a2c, a3c = placement(False), placement(True)
    start = flat(a2c[1])
    try:
        for update in range(4):
            params = []
            for _envs, model, learner, sampler in (a2c, a3c):
                torch.manual_seed(100 + update)  # the same action samples
                if isinstance(learner, HogwildLearner):
                    learner.pull()
                learner.update(sampler.next(True), update, True)
                params.append(flat(model))
            assert not torch.equal(params[0], start)  # the updates step
            assert torch.equal(params[0], params[1]), f"update {update}"
    finally:
        a2c[0].close()
        a3c[0].close()


# ---------------------------------------------------------------- learning

@pytest.mark.slow
def test_cartpole_a3c_two_workers_solves(tmp_path):
    """The preset solves CartPole within its budget on one of two runs (seed 1, else seed 2).
    Its workers race each other, so one seed does not give one run, and in `make test` the
    other pytest worker shares the cores: one run there reached a best evaluation of 473.45
    (2026-12-06). Every run tried must finish with all its outputs."""
    from actorcritic.training import train

    for seed in (1, 2):
        run = tmp_path / f"run-{seed}"
        summary = train("cartpole-a3c", run, quiet=True, overrides=[f"run.seed={seed}"])
        assert summary["status"] == "finished"
        assert summary["env_steps"] <= 620_000  # the budget, plus updates in flight
        assert summary["eval"]["episodes"] == 20
        # The live evaluator (20 greedy episodes every 25k steps) reached 475 within the
        # budget, and that snapshot is checkpoints/best. The final parameters of an
        # asynchronous run can still drift after it (seed 5 once ended at 242), so the bar
        # is on the evaluator.
        if summary["best_score"] >= 475:
            break
    assert summary["best_score"] >= 475, summary
    with open(run / "episodes.csv") as fh:
        workers = {row["worker"] for row in csv.DictReader(fh)}
    assert workers == {"0", "1"}
    final = load_checkpoint(run / "checkpoints" / "final.safetensors")
    assert final.meta["algo"] == "a3c"
    assert final.meta["counters"]["env_steps"] == summary["env_steps"]
    assert any(k.startswith("optim.") and k.endswith(".step") for k in final.tensors)
    assert (run / "checkpoints" / "best.safetensors").is_file()
    tags = _tensorboard_tags(run / "tb")
    assert {"workers/0/sps", "workers/1/sps", "workers/0/mean_return_20", "charts/sps",
            "losses/total", "diag/policy_lag", "charts/lr"} <= tags
    if summary["env_steps"] >= 50_000:  # the evaluator process reported during training
        assert "eval/mean_return" in tags


def _tensorboard_tags(tb_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


# ---------------------------------------------------------------- processes

def _proc_stat(pid: int) -> tuple[str, str, int, int] | None:
    """(comm, state, ppid, starttime) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return comm, fields[0], int(fields[1]), int(fields[19])


def _children(ppid: int) -> dict[int, tuple[str, int]]:
    """pid -> (comm, starttime) of the live processes ppid started (the workers are forked
    by its fork server)."""
    out = {}
    for pid in children(ppid):
        st = _proc_stat(pid)
        if st and st[1] != "Z":
            out[pid] = (st[0], st[3])
    return out


def _alive(pid: int, starttime: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[3] == starttime and st[1] not in ("Z", "X")


def _wait_for(predicate, timeout: float, what: str, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"run exited ({proc.returncode}) while waiting for {what}:\n"
                                 f"{out}\n{err}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _worker(ppid: int, i: int) -> int | None:
    return next((pid for pid, (comm, _) in _children(ppid).items()
                 if comm == f"a3c-worker-{i}"), None)


def _episode_rows(run: Path) -> list[dict]:
    try:
        with open(run / "episodes.csv") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _args(run: Path, *sets: str, quiet: bool = True) -> list[str]:
    args = CLI + ["train", "cartpole-a3c", "--run-dir", str(run),
                  "--set", "env.num_envs=4", "--set", "run.eval_episodes=0"]
    for s in sets:
        args += ["--set", s]
    if quiet:
        args.append("--quiet")
    return args


def _cli_run(run: Path, *sets: str, quiet: bool = True):
    """The CLI training as a subprocess (own process group), killed whatever the test does."""
    return cli_process(_args(run, *sets, quiet=quiet))


def _assert_no_survivors(children: dict[int, tuple[str, int]]) -> None:
    _wait_for(lambda: not any(_alive(pid, t) for pid, (_, t) in children.items()), 15,
              "every child of the run to be gone")


@pytest.mark.slow
def test_killed_worker_is_restarted_and_training_finishes(tmp_path):
    run = tmp_path / "run"
    with _cli_run(run, "run.total_steps=100000", "run.eval_every=0") as proc:
        _wait_for(lambda: len(_episode_rows(run)) > 5, 120, "first episodes", proc)
        victim = _worker(proc.pid, 0)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        killed_at = len(_episode_rows(run))
        # a new worker 0 appears and its episodes arrive after the kill
        _wait_for(lambda: (_worker(proc.pid, 0) or victim) != victim, 60, "a new worker 0",
                  proc)
        out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["stop_reason"] == "total_steps"
    final = load_checkpoint(run / "checkpoints" / "final.safetensors")
    assert final.meta["worker_restarts"] == 1
    after = _episode_rows(run)[killed_at:]
    assert any(r["worker"] == "0" for r in after), "the restarted worker 0 never reported"


@pytest.mark.slow
def test_hung_worker_past_restart_limit_fails_cleanly(tmp_path):
    run = tmp_path / "run"
    children = {}
    with _cli_run(run, "run.total_steps=10000000", "run.eval_every=0",
                  "run.worker_timeout=8", "run.max_worker_restarts=0") as proc:
        # Worker 1 must have reported: until then it has the start-up grace, not the timeout.
        _wait_for(lambda: any(r["worker"] == "1" for r in _episode_rows(run)), 120,
                  "worker 1's first episodes", proc)
        children = _children(proc.pid)
        os.kill(_worker(proc.pid, 1), signal.SIGSTOP)  # alive but silent
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("actorcritic: error: "), err
    assert "worker 1 sent no heartbeat" in err and "max_worker_restarts=0" in err, err
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    final = load_checkpoint(run / "checkpoints" / "final.safetensors")
    assert final.meta["counters"]["env_steps"] > 0
    _assert_no_survivors(children)


@pytest.mark.slow
def test_ctrl_c_writes_final_checkpoint_and_leaves_no_child(tmp_path):
    run = tmp_path / "run"
    children = {}
    with _cli_run(run, "run.total_steps=10000000", "run.eval_every=20000") as proc:
        _wait_for(lambda: len(_episode_rows(run)) > 5, 120, "first episodes", proc)
        _wait_for(lambda: "a3c-evaluator" in {comm for comm, _ in _children(proc.pid).values()},
                  60, "the evaluator", proc)
        children = _children(proc.pid)
        assert {"a3c-worker-0", "a3c-worker-1"} <= {comm for comm, _ in children.values()}
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stop_reason"] == "SIGINT"
    final = load_checkpoint(run / "checkpoints" / "final.safetensors")
    assert final.meta["counters"]["env_steps"] == summary["env_steps"] > 0
    from actorcritic.config import config_from_dict
    from actorcritic.training import build_model, spaces_for

    cfg = config_from_dict(final.meta["config"])
    model = build_model(cfg, *spaces_for(cfg))
    load_model_exact(model, final)
    _assert_no_survivors(children)

    # resume: model, shared optimizer state and counters carry on from the final checkpoint
    from actorcritic.training import train

    steps, updates = summary["env_steps"], summary["updates"]
    old_step = _optimizer_step(final)
    resumed = train(resume=run, quiet=True,
                    overrides=[f"run.total_steps={steps + 3000}", "run.eval_every=0"])
    assert resumed["status"] == "finished" and resumed["env_steps"] >= steps + 3000
    assert resumed["episodes"] > summary["episodes"]
    again = load_checkpoint(run / "checkpoints" / "final.safetensors")
    new_updates = again.meta["counters"]["updates"]
    assert new_updates > updates
    # Hogwild steps may (rarely) lose an increment of the shared step count, never add one
    assert old_step < _optimizer_step(again) <= old_step + (new_updates - updates)


def _optimizer_step(ckpt) -> float:
    return float(ckpt.tensors["optim.0.step"])
