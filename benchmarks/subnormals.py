"""What subnormal floats cost a long SAC or TD3 run, and what `run.flush_denormals` saves.

The Adam moments of a unit whose gradient is zero (a dead ReLU) decay geometrically, and on
their way to zero they pass through the subnormal range (below 1.2e-38): the second moment
(beta2 0.999) takes about 16,000 steps to cross it. x86 arithmetic on subnormal inputs and
results takes a slow microcode path.

For each checkpoint given (a run of this project), the script counts the subnormal values
among its optimizer moments and parameters; then, for a SAC or TD3 checkpoint with its
replay buffer (periodic or final), it loads it as `--resume` does (networks, target
networks, optimizer moments, temperature, replay buffer) and times gradient steps on
minibatches of its buffer, with IEEE subnormals and with them flushed to zero, rounds
alternating. A flushed step writes zeros where the
subnormals were, so every round starts from the checkpoint's state again.

    cd benchmarks && ../.venv/bin/python subnormals.py CKPT [CKPT ...] [--rounds 3]
        [--steps 200] [--count-only]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import machine, print_table

from actorcritic.config import load_config
from actorcritic.envs import spaces_for
from actorcritic.run.checkpoint import load_checkpoint, load_model_exact

TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32, 1.18e-38


def subnormal_count(tensors: dict[str, torch.Tensor], prefix: str) -> tuple[int, int]:
    """(subnormal values, all values) among the float32 tensors whose key starts with
    `prefix`."""
    found = total = 0
    for key, value in tensors.items():
        if key.startswith(prefix) and value.dtype == torch.float32:
            size = value.abs()
            found += int(((size > 0) & (size < TINY)).sum())
            total += value.numel()
    return found, total


def learner_from(path: Path):
    """The learner and replay buffer of a checkpoint, as `--resume` restores them."""
    from actorcritic.algorithms.sac import SACLearner
    from actorcritic.algorithms.td3 import TD3Learner
    from actorcritic.models.off_policy import build_off_policy_model
    from actorcritic.samplers.replay_buffer import ReplayBuffer

    cfg = load_config(path.parent.parent / "config.yaml")
    ckpt = load_checkpoint(path)
    obs_space, action_space = spaces_for(cfg)
    model = build_off_policy_model(cfg, obs_space, action_space)
    load_model_exact(model, ckpt)
    action_dim = int(action_space.shape[0])
    buffer = ReplayBuffer(cfg.algo.buffer_size, obs_space, action_dim)
    buffer.load(ckpt.tensors, ckpt.meta["replay"]["pos"], ckpt.meta["replay"]["size"])
    learner_class = SACLearner if cfg.algo.name == "sac" else TD3Learner
    learner = learner_class(model, cfg, torch.device("cpu"), action_dim)
    learner.load_state(ckpt)
    return learner, buffer, cfg


def time_steps(path: Path, flush: bool, steps: int) -> float:
    """ms per gradient step from the checkpoint's state, subnormals flushed or not."""
    learner, buffer, cfg = learner_from(path)
    torch.manual_seed(0)
    batches = [buffer.sample(cfg.algo.batch_size) for _ in range(50)]
    torch.set_flush_denormal(flush)
    try:
        start = time.perf_counter()
        for i in range(steps):
            learner.gradient_step(batches[i % len(batches)], 0)
        return (time.perf_counter() - start) / steps * 1e3
    finally:
        torch.set_flush_denormal(False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200, help="gradient steps a round")
    parser.add_argument("--count-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as halfcheetah-sac and its kin train
    counts, timings = [], []
    for path in args.checkpoints:
        ckpt = load_checkpoint(path)
        steps = ckpt.meta["counters"]["env_steps"]
        moments, all_moments = subnormal_count(ckpt.tensors, "optim")  # optim. or optim_NAME.
        params, all_params = subnormal_count(ckpt.tensors, "model.")
        counts.append([str(path), f"{steps:,}", f"{moments:,} of {all_moments:,} "
                       f"({moments / all_moments:.1%})", f"{params:,} of {all_params:,}"])
        if args.count_only:
            continue
        if ckpt.meta.get("replay") is None:
            raise SystemExit(f"{path}: no replay buffer in this checkpoint (timing takes a SAC "
                             f"or TD3 run's periodic or final one); --count-only counts any")
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for flush in (False, True):
                times[flush].append(time_steps(path, flush, args.steps))
        ieee, flushed = statistics.median(times[False]), statistics.median(times[True])
        timings.append([str(path), f"{ieee:.2f}", f"{flushed:.2f}", f"{ieee / flushed:.2f}x",
                        " / ".join(f"{a:.2f}, {b:.2f}" for a, b in zip(times[False],
                                                                        times[True]))])
    print_table(f"Subnormal values in checkpoints ({machine()})",
                ["checkpoint", "env steps", "optimizer moments", "parameters"], counts)
    if timings:
        print_table(f"ms a gradient step from the checkpoint's state, median of {args.rounds} "
                    f"alternating rounds of {args.steps} steps, one torch thread",
                    ["checkpoint", "IEEE subnormals", "flushed to zero", "speed-up",
                     "rounds (IEEE, flushed)"], timings)


if __name__ == "__main__":
    main()
