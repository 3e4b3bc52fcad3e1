"""A3C: worker processes pushing gradients into one global model in shared memory.

Each worker runs the same loop pieces as A2C (`collect_rollout`, `rollout_loss`) over its own
small vector of envs: copy the global parameters into its local model, play `num_steps`
(t_max) steps, compute the loss on the local model, hand its gradients to the global
parameters and step the shared optimizer (`shared_optim`). Nothing waits for anything else.
A rollout is always t_max steps per env and runs across episode ends (the returns stop at
them), where the notebooks cut it at an episode end: same targets, fixed-size batches.

The main process never trains. It runs the one training loop (run/loop.py) over an
`A3CSampler`, whose every item is an update a worker has already applied (its steps,
episodes and, on logged updates, the workers' latest losses), and a learner that only holds
the shared optimizer for checkpoints. Meanwhile the sampler restarts a child that died or
stopped reporting (at most `run.max_worker_restarts` times), hands due evaluations to the
evaluator process, and on any exit stops, joins and if needed kills every child started.

Global counters (env steps, updates, episodes) live in a shared int64 tensor with one row per
worker (each row written by its worker only, so no lock) plus a row for the counts a resumed
run starts from; their sum drives the learning-rate schedule in every worker.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from multiprocessing.connection import wait as wait_connections

import torch
import torch.multiprocessing as mp
from torch import nn

from actorcritic.algos.shared_optim import make_shared_optimizer
from actorcritic.algos.update import (
    OptimizerState,
    accelerators_line,
    clip_and_measure,
    guard_update,
    reuses_acting_graph,
    rollout_loss,
)
from actorcritic.run.loop import Collected, run_loop
from actorcritic.run.workers import (
    ErrorReport,
    WorkerPool,
    child_setup,
    raise_report,
    reap_process,
    send_report,
    start_process,
)
from actorcritic.schedules import lr_at

STEPS, UPDATES, EPISODES = 0, 1, 2  # columns of the shared counters
JOIN_GRACE = 5.0                    # seconds children get to stop before SIGTERM, then SIGKILL


# ---------------------------------------------------------------- the update (one worker)

def pull_params(local: nn.Module, global_model: nn.Module) -> None:
    """Copy the global parameters and buffers into the local model."""
    with torch.no_grad():
        for lp, gp in zip(local.parameters(), global_model.parameters(), strict=True):
            lp.copy_(gp)
        for lb, gb in zip(local.buffers(), global_model.buffers(), strict=True):
            lb.copy_(gb)


def push_grads(local_params: list[torch.Tensor], global_params: list[torch.Tensor]) -> None:
    """Give every global parameter this update's local gradient.

    Assigned on every update. Public A3C code often does `if global.grad is not None:
    return` here, which only works while the local grad tensor is reused in place; with
    `zero_grad(set_to_none=True)` each backward makes new tensors, so that shortcut leaves
    the global parameters with the first update's gradients forever. The gradient is private
    to this process (a process-local attribute of its handle on the shared parameter).
    """
    for lp, gp in zip(local_params, global_params, strict=True):
        gp.grad = lp.grad


def a3c_update(local: nn.Module, global_params: list[torch.Tensor], optimizer, loss: torch.Tensor,
               stats: dict, max_grad_norm: float, nan_guard: bool = True,
               update: int = 0) -> None:
    """Backward on the local model, clip, check, push the grads and step the shared optimizer."""
    local_params = list(local.parameters())
    local.zero_grad(set_to_none=True)
    loss.backward()
    stats["diag/grad_norm"] = clip_and_measure(local_params, max_grad_norm)
    if nan_guard:

        guard_update(local, loss, stats, update)
    push_grads(local_params, global_params)
    optimizer.step()


# ---------------------------------------------------------------- child processes

def worker_main(wid: int, cfg, global_model: nn.Module, optimizer, counters: torch.Tensor,
                stop, conn, seed: int, parent_pid: int) -> None:
    """Entry point of worker process `wid` (spawned; everything arrives pickled)."""
    child_setup(f"a3c-worker-{wid}", seed)
    try:
        _work(wid, cfg, global_model, optimizer, counters, stop, conn, seed, parent_pid)
    except BaseException as exc:
        send_report(conn, f"A3C worker {wid}", exc)
        raise SystemExit(1) from None
    finally:
        conn.close()


class HogwildLearner:
    """A worker's learner: the loss of its rollout on its local copy, backward, clip, NaN
    guard, then the gradients handed to the global parameters and one step of the shared
    optimizer, without waiting for the other workers (Hogwild; `algo.shared_lock` adds a
    lock around the step)."""

    def __init__(self, local: nn.Module, global_model: nn.Module, optimizer, cfg):
        self.local, self.global_model, self.optimizer, self.cfg = local, global_model, \
            optimizer, cfg
        self.global_params = [p for g in optimizer.param_groups for p in g["params"]]
        if any(a is not b for a, b in zip(self.global_params, global_model.parameters(),
                                          strict=True)):
            raise RuntimeError("the shared optimizer does not hold the global model's "
                               "parameters")

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def pull(self) -> None:
        """Act and learn from the newest global parameters."""
        pull_params(self.local, self.global_model)

    def update(self, collected, update: int, log_now: bool):
        buf = collected.data[0]
        # The acting passes, recorded where the sampler replays them (a CNN): the local
        # parameters did not change since they acted, so the gradient is the recomputed one.
        acted, buf.acted = buf.acted, None
        loss, stats = rollout_loss(self.local, buf, self.cfg.algo, with_stats=log_now,
                                   acted=acted)
        a3c_update(self.local, self.global_params, self.optimizer, loss, stats,
                   self.cfg.algo.max_grad_norm, self.cfg.run.nan_guard, update)
        return stats, []


def _work(wid, cfg, global_model, optimizer, counters, stop, conn, seed, parent_pid) -> None:
    """One worker: A2C's synchronous sampler over its own envs, the Hogwild learner."""
    from actorcritic.algos.a2c_sampling import SyncSampler
    from actorcritic.algos.reward_scaling import ConstantScale
    from actorcritic.algos.rollout import Carry, RolloutBuffer
    from actorcritic.envs import make_vector_env
    from actorcritic.models.actor_critic import ActorCritic

    cpu = torch.device("cpu")
    envs = make_vector_env(cfg.env, seed=seed, mode="train")
    try:
        local = ActorCritic(envs.single_observation_space, envs.single_action_space, cfg.model)
        learner = HogwildLearner(local, global_model, optimizer, cfg)
        learner.pull()
        buf = RolloutBuffer(cfg.algo.num_steps, envs.num_envs, envs.single_observation_space,
                            envs.single_action_space, cpu)
        carry = Carry.start(envs.reset(seed=seed), local, cpu)
        sampler = SyncSampler(envs, local, carry, buf, cfg, reuses_acting_graph(local, cfg.algo),
                              ConstantScale(cfg.algo.reward_scale))
        row = counters[wid]
        conn.send(("ready",))
        n = 0
        while not stop.is_set() and os.getppid() == parent_pid:
            learner.pull()
            totals = counters.sum(0)
            lr = lr_at(cfg.algo, int(totals[STEPS]), cfg.run.total_steps, int(totals[EPISODES]))
            learner.set_lr(lr)
            log_now = n % cfg.run.log_every == 0  # from its first: the main process logs early
            collected = sampler.next(log_now)
            stats, _ = learner.update(collected, n, log_now)
            # optimizer steps of other workers between this worker's copy and its step
            lag = int(counters[:, UPDATES].sum() - totals[UPDATES])
            episodes = collected.episodes[0][1]
            row[STEPS] += collected.steps
            row[UPDATES] += 1
            row[EPISODES] += len(episodes)
            n += 1
            out = None
            if log_now:
                out = {k: float(v) for k, v in stats.items()}
                out.update({"charts/lr": lr, "diag/policy_lag": lag})
            conn.send(("update", collected.steps, episodes, out))
    finally:
        envs.close()


def evaluator_main(cfg, global_model: nn.Module, conn, parent_pid: int) -> None:
    """Entry point of the evaluator: on request, snapshot the global model and play it."""
    import copy

    from actorcritic.run.evaluate import evaluate_policy

    child_setup("a3c-evaluator", None)
    try:
        local = copy.deepcopy(global_model)  # private tensors, not shared
        conn.send(("ready",))
        while os.getppid() == parent_pid:
            if not conn.poll(1.0):
                conn.send(("heartbeat",))
                continue
            msg = conn.recv()
            if msg[0] == "stop":
                break
            _, env_steps, seed = msg
            pull_params(local, global_model)
            snapshot = {k: v.detach().numpy().copy() for k, v in local.state_dict().items()}
            result = evaluate_policy(local, cfg.env, cfg.run.eval_during_episodes,
                                     greedy=cfg.run.eval_greedy, seed=seed)
            conn.send(("eval", env_steps, result, snapshot))
    except (EOFError, BrokenPipeError):
        pass  # the main process went away
    except BaseException as exc:
        send_report(conn, "A3C evaluator", exc)
        raise SystemExit(1) from None
    finally:
        conn.close()


# ---------------------------------------------------------------- the pool of children

class ChildPool:
    """The worker processes and the evaluator, each behind a pipe: the transport of a
    `WorkerPool`, which decides when one is restarted. Index `num_workers` is the evaluator."""

    def __init__(self, session, model: nn.Module, optimizer, counters: torch.Tensor):
        self.session, self.cfg = session, session.cfg
        self.model, self.optimizer, self.counters = model, optimizer, counters
        self.ctx = mp.get_context("spawn")
        self.stop_event = self.ctx.Event()
        self.stopped = False
        workers = self.cfg.algo.num_workers
        names = [f"A3C worker {i}" for i in range(workers)]
        self.evaluator = None
        if self.cfg.run.eval_every:
            self.evaluator = workers
            names.append("A3C evaluator")
        self.procs: list = [None] * len(names)
        self.conns: list = [None] * len(names)
        self.sps_mark = [(0.0, 0)] * workers   # (time, steps) at the last log
        self.returns = [deque(maxlen=20) for _ in range(workers)]  # last episode returns
        run = self.cfg.run
        self.pool = WorkerPool("A3C worker", len(names), self, run.worker_timeout,
                               run.max_worker_restarts, run.seed, session.updates, names)

    @property
    def restarts(self) -> int:
        return self.pool.restarts

    def start_all(self) -> None:
        self.pool.start_all()

    # ------------------------------------------------------------ the transport

    def start_worker(self, index: int, seed: int) -> None:
        if index == self.evaluator:
            conn, child_conn = self.ctx.Pipe(duplex=True)
            target, args = evaluator_main, (self.cfg, self.model, child_conn, os.getpid())
        else:
            conn, child_conn = self.ctx.Pipe(duplex=False)
            target = worker_main
            args = (index, self.cfg, self.model, self.optimizer, self.counters, self.stop_event,
                    child_conn, seed, os.getpid())
            self.sps_mark[index] = (time.monotonic(), int(self.counters[index, STEPS]))
        self.procs[index] = start_process(self.ctx, target, args,
                                          f"a3c-{self.pool.names[index]}")
        child_conn.close()  # so a dead child's pipe reads as EOF here
        self.conns[index] = conn

    def stop_worker(self, index: int) -> None:
        if self.procs[index] is not None:
            reap_process(self.procs[index])
            self.procs[index].close()
            self.procs[index] = None
        self._close_conn(index)

    def exit_code(self, index: int) -> int | None:
        proc = self.procs[index]
        code = None if proc is None else proc.exitcode
        if code is not None:
            self._read_last_error(index)
        return code

    def _close_conn(self, index: int) -> None:
        if self.conns[index] is not None:
            self.conns[index].close()
            self.conns[index] = None

    # ------------------------------------------------------------ messages

    def poll(self, timeout: float) -> list[tuple[int, tuple]]:
        """Messages that arrived within `timeout` seconds, with the index of their sender."""
        by_conn = {c: i for i, c in enumerate(self.conns) if c is not None}
        out = []
        for conn in wait_connections(list(by_conn), timeout=timeout):
            index = by_conn[conn]
            try:
                while conn.poll():
                    msg = conn.recv()
                    out.append((index, msg))
                    # the first rollout (first backward) still counts as start-up time
                    self.pool.heard_from(index, started_up=msg[0] != "ready")
            except (EOFError, OSError):
                self._close_conn(index)  # the child is gone; check() sees its exit code
            except Exception as exc:  # a message cut off by a killed child
                self.pool.workers[index].error = f"unreadable message ({type(exc).__name__})"
                self._close_conn(index)
        return out

    def note_error(self, index: int, report: ErrorReport) -> None:
        """A child's error: a user error or a NaN ends the run (a restart would repeat it);
        anything else is kept for the line that reports its exit."""
        if report.user_error:
            raise_report(report)
        self.pool.workers[index].error = report.text()

    def _read_last_error(self, index: int) -> None:
        """A child that died may have said why just before: read what is left in its pipe."""
        conn = self.conns[index]
        try:
            while conn is not None and conn.poll():
                msg = conn.recv()
                if msg[0] == "error":
                    self.note_error(index, msg[1])
        except (EOFError, OSError):
            pass

    # ------------------------------------------------------------ faults

    def check_health(self) -> None:
        """Restart a child that died or went silent; fail once restarts are used up."""
        self.pool.check(self._release_orphaned_lock, say=self.session.progress.message)

    def _release_orphaned_lock(self, index: int, why: str) -> None:
        """A worker killed inside a locked optimizer step leaves the lock held: free it."""
        lock = self.optimizer.lock
        if lock is None:
            return
        if lock.acquire(timeout=2.0):  # a live worker holds it for milliseconds at most
            lock.release()
        else:
            lock.release()

    # ------------------------------------------------------------ evaluation

    def request_eval(self, env_steps: int, seed: int) -> bool:
        index = self.evaluator
        if index is None or self.pool.workers[index].busy or self.conns[index] is None:
            return False
        try:
            self.conns[index].send(("eval", env_steps, seed))
        except (BrokenPipeError, OSError):
            return False
        self.pool.workers[index].busy = True
        return True

    def eval_done(self) -> None:
        self.pool.workers[self.evaluator].busy = False

    # ------------------------------------------------------------ per-worker speed

    def worker_stats(self) -> dict[str, float]:
        """Per worker: env steps per second since the last call, mean of its last returns."""
        now, out = time.monotonic(), {}
        for index, (t0, s0) in enumerate(self.sps_mark):
            steps = int(self.counters[index, STEPS])
            if now > t0:
                out[f"workers/{index}/sps"] = (steps - s0) / (now - t0)
            self.sps_mark[index] = (now, steps)
            if self.returns[index]:
                returns = self.returns[index]
                out[f"workers/{index}/mean_return_20"] = sum(returns) / len(returns)
        return out

    # ------------------------------------------------------------ the end

    def shutdown(self) -> None:
        """Stop every child: ask, wait up to JOIN_GRACE seconds (draining their pipes so no
        one blocks on a send), then SIGTERM and SIGKILL. Safe to call twice."""
        if self.stopped:
            return
        self.stopped = True
        self.stop_event.set()
        if self.evaluator is not None and self.conns[self.evaluator] is not None:
            with contextlib.suppress(OSError):
                self.conns[self.evaluator].send(("stop",))
        started = [p for p in self.procs if p is not None]
        deadline = time.monotonic() + JOIN_GRACE
        while time.monotonic() < deadline and any(p.exitcode is None for p in started):
            self.poll(0.05)
        self.pool.stop_all()


# ---------------------------------------------------------------- the main process

class A3CSampler:
    """What the training loop sees of A3C: `next()` is the next update a worker applied to
    the shared model. Between updates it reads the evaluator's results (recorded, and kept
    as the best checkpoint with the parameters that were played), the children's errors,
    and restarts a child that died or went silent. `publish` has nothing to send: the
    workers copy the shared parameters before every rollout."""

    def __init__(self, session, pool: ChildPool, counters: torch.Tensor):
        self.session, self.pool, self.counters = session, pool, counters
        self.inbox: deque[tuple[int, tuple]] = deque()
        self.losses: dict[str, float] = {}  # the latest a worker reported
        session.start_evaluation = self.request_evaluation
        pool.start_all()

    def next(self, log_now: bool) -> Collected:
        """The next applied update; an empty item (updates 0) if the run should stop
        while none has arrived."""
        while True:
            while self.inbox:
                index, msg = self.inbox.popleft()
                if msg[0] == "update":
                    return self._applied(index, msg, log_now)
                if msg[0] == "eval":
                    self._evaluated(msg)
                elif msg[0] == "error":
                    self.pool.note_error(index, msg[1])
            self.pool.check_health()
            if self.session.should_stop():
                return Collected(0, None, updates=0)
            self.inbox.extend(self.pool.poll(0.25))

    def _applied(self, index: int, msg: tuple, log_now: bool) -> Collected:
        _, steps, episodes, losses = msg
        self.pool.returns[index].extend(ep.ret for ep in episodes)
        if losses is not None:
            self.losses = losses
        stats = {**self.losses, **self.pool.worker_stats()} if log_now else {}
        return Collected(steps, None, [(index, episodes)], stats)

    def _evaluated(self, msg: tuple) -> None:
        _, steps, result, snapshot = msg
        self.pool.eval_done()
        session = self.session
        session.record_eval(result)
        session.logger.scalars(steps, session.wall_seconds,
                               {"eval/mean_return": result["mean_return"]})
        session.progress.message(f"eval at {steps} steps: mean return "
                                 f"{result['mean_return']:.1f}")
        if session.improved():
            session.checkpoint("best", {f"model.{k}": torch.from_numpy(v)
                                        for k, v in snapshot.items()})

    def request_evaluation(self, model: nn.Module) -> None:
        """`session.start_evaluation`: the evaluator snapshots the shared model and plays
        it while the workers train on (skipped while it is still busy with the last one)."""
        s = self.session
        self.pool.request_eval(s.env_steps, s.cfg.run.seed + 50_000 + s.updates)

    def publish(self, version: int, model: nn.Module) -> None:
        """The workers read the shared parameters themselves."""

    def add_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        meta["worker_restarts"] = self.pool.restarts

    def stop(self) -> None:
        """Stop every child, then take the counts from the shared counters (the updates
        applied while their messages were on the way count too)."""
        self.pool.shutdown()
        totals = self.counters.sum(0)
        self.session.env_steps = int(totals[STEPS])
        self.session.updates = int(totals[UPDATES])

    def close(self) -> None:
        self.pool.shutdown()


class SharedOptimizerLearner(OptimizerState):
    """A3C's learner in the main process: the workers have applied every update already
    (HogwildLearner), each at the learning rate it computes from the global counters. This
    one holds the shared optimizer for checkpoints, copied under its lock when it has one."""

    def __init__(self, optimizer: torch.optim.Optimizer, lock):
        self.optimizer, self.lock = optimizer, lock

    def set_lr(self, lr: float) -> None:
        """Each worker sets its own: this process's copy of the optimizer never steps."""

    def update(self, collected: Collected, update: int, log_now: bool):
        return {}, []

    def holding_still(self) -> contextlib.AbstractContextManager:
        return self.lock if self.lock is not None else contextlib.nullcontext()


def run_a3c(session, model: nn.Module, resume=None) -> None:
    """Asynchronous advantage actor-critic: `algo.num_workers` workers, one global model."""
    from actorcritic.run.checkpoint import load_optimizer

    cfg = session.cfg
    if session.device.type != "cpu":
        session.progress.message("A3C trains on the CPU (workers share CPU memory); "
                                 f"ignoring run.device={cfg.run.device}")
        session.device = torch.device("cpu")
    model.to("cpu")
    model.share_memory()
    lock = mp.get_context("spawn").Lock() if cfg.algo.shared_lock else None
    optimizer = make_shared_optimizer(model.parameters(), cfg.algo, lock)
    if resume is not None:
        load_optimizer(optimizer, resume)  # shared again by SharedAdam/SharedRMSprop
    W = cfg.algo.num_workers
    counters = torch.zeros(W + 1, 3, dtype=torch.int64)
    counters[W] = torch.tensor([session.env_steps, session.updates, session.window.count])
    counters.share_memory_()
    acting = "torch, recorded for replay" if reuses_acting_graph(model, cfg.algo) else "torch"
    kernel = {"adam": "fused", "rmsprop": "multi-tensor"}.get(cfg.algo.optimizer, "per tensor")
    session.progress.message(f"a3c on workers: {W} workers, acting {acting}, update torch on "
                             f"each worker's copy, shared {cfg.algo.optimizer} ({kernel})"
                             + (" under a lock" if lock is not None else "")
                             + f"; {accelerators_line(acting, 'torch')}")
    pool = ChildPool(session, model, optimizer, counters)
    try:
        sampler = A3CSampler(session, pool, counters)
    except BaseException:
        pool.shutdown()
        raise
    run_loop(session, model, sampler, SharedOptimizerLearner(optimizer, lock))
