"""A3C's sampler: worker processes that each act, learn and step one shared model, and what
the main process's training loop sees of them.

Each worker runs A2C's synchronous sampler over its own small vector of envs and A3C's
learner (algorithms/hogwild.py): copy the global parameters into its local model, play
`num_steps` (t_max) steps, compute the loss on the local model, hand its gradients to the
global parameters and step the shared optimizer. Nothing waits for anything else. A rollout
is always t_max steps per env and runs across episode ends (the returns stop at them),
where the notebooks cut it at an episode end: same targets, fixed-size batches.

`A3CSampler` yields, for the main process's loop, every update a worker has already
applied (its steps, episodes and, on logged updates, the workers' latest losses).
Meanwhile it restarts a child that died or stopped reporting (at most
`run.max_worker_restarts` times), hands due evaluations to the evaluator process, and on
any exit stops, joins and if needed kills every child started (`ChildPool`).

Global counters (env steps, updates, episodes) live in a shared int64 tensor with one row per
worker (each row written by its worker only, so no lock) plus a row for the counts a resumed
run starts from; their sum drives the learning-rate schedule in every worker.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from multiprocessing.connection import wait as wait_connections

import torch
from torch import nn

from actorcritic.algorithms.hogwild import HogwildLearner, pull_params
from actorcritic.algorithms.update import reuses_acting_graph
from actorcritic.run.workers import (
    ErrorReport,
    WorkerPool,
    child_setup,
    main_process_alive,
    process_context,
    raise_report,
    reap_process,
    send_report,
    start_process,
)
from actorcritic.samplers.experience import Collected
from actorcritic.schedules import lr_at

STEPS, UPDATES, EPISODES = 0, 1, 2  # columns of the shared counters
JOIN_GRACE = 5.0                    # seconds children get to stop before SIGTERM, then SIGKILL


# ---------------------------------------------------------------- child processes

def worker_main(wid: int, cfg, global_model: nn.Module, optimizer, counters: torch.Tensor,
                stop, conn, seed: int) -> None:
    """Entry point of worker process `wid` (forked by the fork server; everything arrives
    pickled, the shared model and optimizer as shared memory)."""
    child_setup(f"a3c-worker-{wid}", seed, cfg.run.flush_denormals)
    try:
        _work(wid, cfg, global_model, optimizer, counters, stop, conn, seed)
    except BaseException as exc:
        send_report(conn, f"A3C worker {wid}", exc)
        raise SystemExit(1) from None
    finally:
        conn.close()


def _work(wid, cfg, global_model, optimizer, counters, stop, conn, seed) -> None:
    """One worker: A2C's synchronous sampler over its own envs, the Hogwild learner."""
    from actorcritic.algorithms.reward_scaling import ConstantScale
    from actorcritic.envs import make_vector_env
    from actorcritic.models.actor_critic import ActorCritic
    from actorcritic.samplers.rollout import Carry, RolloutBuffer
    from actorcritic.samplers.sync import SyncSampler

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
        while not stop.is_set() and main_process_alive():
            learner.pull()
            totals = counters.sum(0)
            lr = lr_at(cfg.algo, int(totals[STEPS]), cfg.run.total_steps, int(totals[EPISODES]))
            learner.set_lr(lr)
            log_now = n % cfg.run.log_every == 0  # from its first: the main process logs early
            collected = sampler.next(log_now)
            stats = learner.update(collected, n, log_now)
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


def evaluator_main(cfg, global_model: nn.Module, conn) -> None:
    """Entry point of the evaluator: on request, snapshot the global model and play it."""
    import copy

    from actorcritic.run.evaluate import evaluate_policy

    child_setup("a3c-evaluator", None, cfg.run.flush_denormals)
    try:
        local = copy.deepcopy(global_model)  # private tensors, not shared
        conn.send(("ready",))
        while main_process_alive():
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
        self.ctx = process_context()
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
            target, args = evaluator_main, (self.cfg, self.model, child_conn)
        else:
            conn, child_conn = self.ctx.Pipe(duplex=False)
            target = worker_main
            args = (index, self.cfg, self.model, self.optimizer, self.counters, self.stop_event,
                    child_conn, seed)
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
        self.session.progress.message(f"eval at {steps} steps: mean return "
                                      f"{result['mean_return']:.1f}")
        self.session.evaluated(result, steps, {f"model.{k}": torch.from_numpy(v)
                                               for k, v in snapshot.items()})

    def request_evaluation(self, model: nn.Module) -> None:
        """The loop's `evaluate`: the evaluator snapshots the shared model and plays
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
        self.session.set_counts(int(totals[STEPS]), int(totals[UPDATES]))

    def close(self) -> None:
        self.pool.shutdown()
