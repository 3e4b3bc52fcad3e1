"""Synchronous A2C over several processes (`algo.processes`): the same update, more cores.

On a CPU, one process cannot keep the cores busy: while the emulators step, the network
waits for their observations; while the network acts and learns, the emulators wait for
its actions. Torch's own threads fill the cores only part of the time. Here the envs are
split between processes, each a whole A2C loop on its share running on one thread, so one
process steps its emulators while another runs its network.

The training process is rank 0: it keeps the session (logging, evaluation, checkpoints,
stop conditions) and the optimizer. Helpers are worker processes (`process_context`) that
hold the same model, its parameters in shared memory. One update:

1. rank 0 sends every helper "go"; every process collects its rollout with the current
   parameters; each helper sends the episodes that finished in it (the sampler's, so
   that episodes reach the session from samplers only), then every process
   backpropagates its loss (a mean over its own valid steps) into its own flat gradient
   (the helpers' in shared memory);
2. each helper replies with its valid-step count, loss and statistics;
3. rank 0 combines the gradients weighted by valid steps, sum_r n_r g_r / sum_r n_r: the
   gradient of the mean loss over the whole batch, as one process would compute it; then it
   clips, checks and steps the optimizer on the shared parameters.

Only the summation order differs from one process, so the update is the same to float
rounding (`test_a2c_parallel.py` checks this against the whole batch). The helpers' rollouts
use their own random streams, so a run with processes is not the same run as without.
A helper that dies or reports an error stops training with one clear line; rank 0 keeps its
last good checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from actorcritic.envs.vector import Episode, answered_within
from actorcritic.errors import WorkerFailure
from actorcritic.run.workers import (
    STARTUP_GRACE,
    child_setup,
    process_context,
    raise_report,
    reap_process,
    send_report,
    start_process,
    worker_seed,
)


def share_of(cfg):
    """The config of one process: its share of the envs and of the cores."""
    from copy import deepcopy

    part = deepcopy(cfg)
    processes = cfg.algo.processes
    part.env.num_envs = cfg.env.num_envs // processes
    if part.env.num_threads == 0:
        part.env.num_threads = max(1, (os.cpu_count() or 1) // processes)
    return part


def env_seed(cfg, rank: int) -> int:
    """Env i of process `rank` gets the seed env rank * share + i would get in one process."""
    return cfg.run.seed + rank * (cfg.env.num_envs // cfg.algo.processes)


def flat_gradients(params: list[torch.Tensor], flat: torch.Tensor) -> None:
    """Make every parameter's `.grad` a view of `flat` (with the parameter's own strides, so
    channels-last weights keep their layout). Backward then accumulates into `flat` in
    place: zero it before each backward, and never `zero_grad(set_to_none=True)`."""
    needed = sum(p.numel() for p in params)
    if needed != flat.numel():
        raise ValueError(f"flat gradient holds {flat.numel()} values, the parameters {needed}")
    offset = 0
    for p in params:
        p.grad = flat.as_strided(p.shape, p.stride(), flat.storage_offset() + offset)
        offset += p.numel()


def combine(own: torch.Tensor, own_count: float, rows: list[torch.Tensor],
            counts: list[float]) -> None:
    """own <- (own_count * own + sum_r counts[r] * rows[r]) / (own_count + sum(counts)):
    per-process gradients of mean losses into the gradient of the whole batch's mean."""
    total = own_count + sum(counts)
    own.mul_(own_count / total)
    for row, count in zip(rows, counts, strict=True):
        own.add_(row, alpha=count / total)


def weighted_stats(own: dict[str, float], own_count: float, others: list[dict[str, float]],
                   counts: list[float]) -> dict[str, float]:
    """Each logged statistic averaged over processes, weighted by valid steps."""
    total = own_count + sum(counts)
    out = {}
    for key, value in own.items():
        acc = float(value) * own_count
        for stats, count in zip(others, counts, strict=True):
            acc += stats[key] * count
        out[key] = acc / total
    return out


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block on `count` torch threads, then go back to the previous count.

    Rank 0 uses it for the tail of an update: while it combines the gradients, clips and
    steps the optimizer (memory-bound passes over every parameter), the helpers wait for
    their next "go", so the cores they ran on are free."""
    before = torch.get_num_threads()
    if count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def valid_count(buf) -> float:
    return max(float(buf.valid.sum()), 1.0)


# ---------------------------------------------------------------- a helper process

def helper_main(rank: int, cfg, model: nn.Module, grad_row: torch.Tensor, conn, seed: int,
                make_envs=None) -> None:
    """Entry point of helper process `rank` (forked by the fork server; the model arrives in
    shared memory).
    `seed` seeds its action sampling; `make_envs(env_cfg, seed)` (default
    `make_vector_env`) builds its envs."""
    child_setup(f"a2c-process-{rank}", seed, cfg.run.flush_denormals)
    try:
        _serve(rank, cfg, model, grad_row, conn, make_envs)
    except BaseException as exc:  # noqa: BLE001 - every failure goes to rank 0
        send_report(conn, f"A2C process {rank}", exc)
    finally:
        conn.close()


def _serve(rank: int, cfg, model: nn.Module, grad_row: torch.Tensor, conn, make_envs) -> None:
    from actorcritic.algorithms.reward_scaling import ConstantScale
    from actorcritic.algorithms.update import reuses_acting_graph, rollout_loss
    from actorcritic.envs import make_vector_env
    from actorcritic.envs.actions import ActionAdapter
    from actorcritic.samplers.rollout import Carry, RolloutBuffer, collect_rollout

    part = share_of(cfg)
    cpu = torch.device("cpu")
    if make_envs is None:
        envs = make_vector_env(part.env, seed=env_seed(cfg, rank), mode="train")
    else:
        envs = make_envs(part.env, env_seed(cfg, rank))
    try:
        params = [p for p in model.parameters() if p.requires_grad]
        flat_gradients(params, grad_row)
        buf = RolloutBuffer(cfg.algo.num_steps, envs.num_envs, envs.single_observation_space,
                            envs.single_action_space, cpu)
        to_env = ActionAdapter(envs.single_action_space)
        carry = Carry.start(envs.reset(seed=env_seed(cfg, rank)), model, cpu)
        keep_graph = reuses_acting_graph(model, cfg.algo)
        rewards = ConstantScale(cfg.algo.reward_scale)
        conn.send(("ready",))
        while True:
            message = conn.recv()
            if message[0] == "stop":
                return
            with_stats = message[1]
            rollout = collect_rollout(envs, model, buf, carry, to_env, cfg.run.nan_guard,
                                      keep_graph=keep_graph, rewards=rewards)
            for episode in rollout.episodes:
                episode.env_index += rank * envs.num_envs
            conn.send(("collected", rollout.episodes))
            loss, stats = rollout_loss(model, buf, cfg.algo, with_stats=with_stats,
                                       acted=rollout.acted)
            grad_row.zero_()
            loss.backward()
            conn.send(("done", valid_count(buf), {k: float(v) for k, v in stats.items()}))
    finally:
        envs.close()


# ---------------------------------------------------------------- rank 0's side

class Helpers:
    """Rank 0's handle on the helper processes: start them, run one update's exchange,
    stop them. Every wait checks that the helpers are alive.

    A helper is not restarted: its gradient is part of the update every process waits for,
    so a helper that dies or hangs ends the run with one line (and the final checkpoint of
    the last good parameters)."""

    def __init__(self, cfg, model: nn.Module, num_params: int, updates: int = 0,
                 make_envs=None):
        """`updates`: where the run (or its resume) starts, for the helpers' seeds.
        `make_envs(env_cfg, seed)`, a module-level function, replaces `make_vector_env`
        in the helpers (benchmarks/atari_throughput.py gives them envs that cost nothing)."""
        self.cfg = cfg
        count = cfg.algo.processes - 1
        self.rows = torch.zeros((count, num_params)).share_memory_()
        ctx = process_context()
        self.conns, self.procs = [], []
        for rank in range(1, count + 1):
            parent, child = ctx.Pipe()
            seed = worker_seed(cfg.run.seed, rank, 0, updates)
            proc = start_process(ctx, helper_main, (rank, cfg, model, self.rows[rank - 1],
                                                    child, seed, make_envs),
                                 f"a2c-process-{rank}", daemon=True)
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for rank in range(1, count + 1):
            self._expect(rank, "ready", STARTUP_GRACE)

    def start_rollouts(self, with_stats: bool) -> None:
        for rank, conn in enumerate(self.conns, start=1):
            try:
                conn.send(("go", with_stats))
            except OSError:  # its end of the pipe is gone
                raise self._died(rank) from None

    def rollouts_done(self) -> list[tuple[int, list[Episode]]]:
        """Wait for every helper's rollout (each then goes on to its gradient): the
        episodes that finished in it, by rank."""
        return [(rank, self._expect(rank, "collected", self.cfg.run.worker_timeout)[1])
                for rank in range(1, len(self.procs) + 1)]

    def finish_update(self, own: torch.Tensor, own_count: float, loss: torch.Tensor,
                      stats: dict) -> tuple[torch.Tensor, dict]:
        """Wait for every helper's gradient; combine them into `own` (rank 0's flat
        gradient). Returns the whole batch's loss and statistics."""
        counts, helper_stats = [], []
        for rank in range(1, len(self.procs) + 1):
            _, count, stats_r = self._expect(rank, "done", self.cfg.run.worker_timeout)
            counts.append(count)
            helper_stats.append(stats_r)
        combine(own, own_count, list(self.rows), counts)
        combined = weighted_stats({k: float(v) for k, v in stats.items()}, own_count,
                                  helper_stats, counts)
        total_loss = torch.tensor(combined["losses/total"])
        return total_loss, {k: torch.tensor(v) for k, v in combined.items()}

    def _expect(self, rank: int, kind: str, seconds: float) -> tuple:
        conn, proc = self.conns[rank - 1], self.procs[rank - 1]
        try:  # time this process was stopped (Ctrl-Z) is not the worker's silence
            if not answered_within([conn], seconds, alive=proc.is_alive):
                if not proc.is_alive():
                    raise self._died(rank)
                raise WorkerFailure(f"A2C process {rank} sent nothing for {seconds:.0f}s")
            message = conn.recv()
        except (EOFError, OSError):  # its end of the pipe closed (or reset) as it died
            raise self._died(rank) from None
        if message[0] == "error":
            raise_report(message[1])
        if message[0] != kind:
            raise WorkerFailure(f"A2C process {rank} sent {message[0]!r}, expected {kind!r}")
        return message

    def _died(self, rank: int) -> WorkerFailure:
        proc = self.procs[rank - 1]
        proc.join(5)
        return WorkerFailure(f"A2C process {rank} died (exit code {proc.exitcode})")

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
        for proc in self.procs:
            reap_process(proc, grace=5.0)
        for conn in self.conns:
            conn.close()

