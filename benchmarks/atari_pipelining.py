"""Does double-buffered acting pay on this machine? Pong acting + env stepping only.

- plain: 16 envs in one EnvPool; act on all 16 (Nature CNN forward), step all 16, repeat.
- pipelined: two EnvPools of 8; while one group's emulators step in EnvPool's threads, the
  network acts on the other group (EnvPool's async send/recv), so env time can hide
  behind inference.
- inference alone at batch 16 and at batch 8.

The pipelined loop only wins if the cores have idle time to give to the emulators while
the network runs; on a 2-core machine both sides already use both cores, and inference on
batches of 8 costs more per frame than on 16.

    cd benchmarks && ../.venv/bin/python atari_pipelining.py --seconds 10 --rounds 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as atari_throughput.py

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from actorcritic.models.encoders import NatureCNN  # noqa: E402

ENVPOOL_KW = dict(episodic_life=True, reward_clip=True, stack_num=4, noop_max=30,
                  frame_skip=4, repeat_action_probability=0.0)


class Actor:
    def __init__(self):
        self.encoder, self.head = NatureCNN((4, 84, 84)), nn.Linear(512, 6)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = self.head(self.encoder(torch.from_numpy(obs)))
            return torch.multinomial(torch.softmax(logits, -1), 1).squeeze(-1).numpy()


def rate(loop, seconds: float, frames_per_call: int) -> float:
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        loop()
        calls += 1
    return calls * frames_per_call / (time.perf_counter() - start)


def plain(actor: Actor, seconds: float) -> float:
    import envpool

    env = envpool.make_gymnasium("Pong-v5", num_envs=16, num_threads=2, seed=1, **ENVPOOL_KW)
    obs = [env.reset()[0]]

    def step():
        obs[0] = env.step(actor(obs[0]))[0]

    try:
        return rate(step, seconds, 16)
    finally:
        env.close()


def pipelined(actor: Actor, seconds: float, threads: int) -> float:
    import envpool

    groups = [envpool.make_gymnasium("Pong-v5", num_envs=8, batch_size=8, num_threads=threads,
                                     seed=seed, **ENVPOOL_KW) for seed in (1, 2)]
    ids = np.arange(8)
    a, b = groups
    obs_a, obs_b = a.reset()[0], [b.reset()[0]]
    a.send(actor(obs_a), ids)

    def step():
        b.send(actor(obs_b[0]), ids)   # group a steps meanwhile
        a.send(actor(a.recv()[0]), ids)  # group b steps meanwhile
        obs_b[0] = b.recv()[0]

    try:
        return rate(step, seconds, 16)
    finally:
        for env in groups:
            env.close()


def inference(actor: Actor, seconds: float, batch: int) -> float:
    obs = np.random.default_rng(0).integers(0, 256, (batch, 4, 84, 84), dtype=np.uint8)
    return rate(lambda: actor(obs), seconds, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    actor = Actor()
    rows = {"plain: 16 envs, act 16, step 16": lambda: plain(actor, args.seconds),
            "pipelined: 2 x 8 envs, 1 thread each": lambda: pipelined(actor, args.seconds, 1),
            "pipelined: 2 x 8 envs, 2 threads each": lambda: pipelined(actor, args.seconds, 2),
            "inference alone, batch 16": lambda: inference(actor, args.seconds, 16),
            "inference alone, batch 8": lambda: inference(actor, args.seconds, 8)}
    results: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(args.rounds):
        for name, run in rows.items():
            results[name].append(run())
    print(f"\nPong acting + env stepping, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}; env steps/s, median of {args.rounds} rounds")
    for name, values in results.items():
        print(f"{name:40s} {np.median(values):8.0f}")


if __name__ == "__main__":
    main()
